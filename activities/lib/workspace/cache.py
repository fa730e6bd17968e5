"""Caches of what setup makes (``.venv``, ``node_modules``), shared by every checkout whose key
holds: the key files' content at the checkout's commit, the setup commands and the platform.

``$UET_HOME/caches/<key>/`` holds ``paths/<path>`` and ``meta.json`` (whose mtime is its
last use, for ``uet gc``). A cache is written in ``caches/.tmp-<key>-<uuid>/`` and renamed
into place in one step: a reader never sees half of one, and when two workers populate one
key at once the first rename wins and the other's copy is dropped.

Setup writes absolute paths into what it makes (a venv's scripts, an editable install's
``.pth``); the files that name the checkout they were made in are listed when the cache is
saved, and rewritten to the new checkout's path when it is restored.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from activities.lib.git import Git
from activities.lib.stat_listing import stat_listing
from schemas.spec import CacheEntry, Command

#: Files larger than this are not scanned for the checkout's path.
RELOCATE_MAX_BYTES = 8 << 20


@dataclass(frozen=True)
class CacheKey:
    entry: CacheEntry
    key: str
    #: The key files and their blob ids: why the key is what it is.
    files: tuple[tuple[str, str], ...]


def caches_dir(home: Path) -> Path:
    return home / "caches"


#: Full listings of recent commits (a commit's files never change): the steps of one wave
#: share their base, and a listing of a big tree costs a tenth of a second.
_LISTINGS: OrderedDict[str, dict[str, str]] = OrderedDict()
_LISTINGS_KEPT = 4


async def tree_listing(
    repo: Git, commit: str, patterns: Iterable[str] | None = None
) -> dict[str, str]:
    """The files at ``commit``: path → blob id (git has hashed the content already). With
    ``patterns`` (``fnmatch``, as cache keys are matched), only enough to match them: literal
    paths are asked for by name, a glob needs the whole listing."""
    wanted = None if patterns is None else sorted(set(patterns))
    if wanted is not None and not any(_is_glob(p) for p in wanted):
        if not wanted:
            return {}
        return _blobs(await repo.out("ls-tree", "-z", "--full-tree", commit, "--", *wanted))
    if commit in _LISTINGS:
        _LISTINGS.move_to_end(commit)
        return _LISTINGS[commit]
    blobs = _blobs(await repo.out("ls-tree", "-r", "-z", "--full-tree", commit))
    _LISTINGS[commit] = blobs
    while len(_LISTINGS) > _LISTINGS_KEPT:
        _LISTINGS.popitem(last=False)
    return blobs


def _is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def _blobs(listing: str) -> dict[str, str]:
    blobs: dict[str, str] = {}
    for record in listing.split("\0"):
        meta, _, path = record.partition("\t")
        parts = meta.split()
        if len(parts) == 3 and parts[1] == "blob":
            blobs[path] = parts[2]
    return blobs


def cache_keys(
    blobs: dict[str, str], entries: list[CacheEntry], setup: list[Command]
) -> list[CacheKey]:
    """Each entry's key, from the blob ids of its key files (``tree_listing``): nothing is
    read from disk."""
    keys = []
    for entry in entries:
        files = tuple(
            sorted(
                (path, blob)
                for path, blob in blobs.items()
                if any(fnmatch.fnmatch(path, pattern) for pattern in entry.key)
            )
        )
        material = json.dumps(
            {
                "path": entry.path,
                "files": files,
                "setup": setup,
                "platform": [sys.platform, platform.machine(), platform.python_version()],
            },
            sort_keys=True,
        )
        keys.append(CacheKey(entry, hashlib.sha256(material.encode()).hexdigest()[:32], files))
    return keys


def lookup(home: Path, key: CacheKey) -> Path | None:
    """The populated cache for ``key``, or None."""
    folder = caches_dir(home) / key.key
    return folder if (folder / "meta.json").is_file() else None


@contextlib.asynccontextmanager
async def populating(home: Path, keys: list[CacheKey]) -> AsyncIterator[None]:
    """Held while the caches for ``keys`` are made: a second checkout that wants one waits for
    the first to save it and restores it, instead of running setup beside it. (The lock is an
    ``flock``: a killed worker's goes with it. Waiting polls, so a cancel is not held up.)"""
    if not keys:
        yield
        return
    root = caches_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    fds: list[int] = []
    try:
        for key in sorted({k.key for k in keys}):  # one order everywhere: no deadlock
            fd = os.open(root / f".lock-{key}", os.O_CREAT | os.O_RDWR, 0o600)
            fds.append(fd)
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.2)
        yield
    finally:
        for fd in fds:
            os.close(fd)


def touch(folder: Path) -> None:
    """Used now (``uet gc`` goes by this)."""
    os.utime(folder / "meta.json")


def restore(folder: Path, key: CacheKey, tree: Path) -> None:
    """The cached directory into ``tree`` (copy-on-write where the file system can), its
    recorded absolute paths rewritten to ``tree``."""
    os.utime(folder / "meta.json")  # in use: `uet gc` goes by this mtime
    meta = json.loads((folder / "meta.json").read_text())
    target = tree / key.entry.path
    if target.exists() or target.is_symlink():
        _remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_tree(folder / "paths" / key.entry.path, target)
    old, new = meta["source"].encode(), str(tree).encode()
    if old != new:
        for relative in meta.get("relocate", []):
            path = tree / relative
            data = path.read_bytes()
            path.write_bytes(data.replace(old, new))


def save(home: Path, key: CacheKey, tree: Path) -> bool:
    """Keep ``tree``'s directory for ``key``; False when it does not exist or another worker
    saved the key first."""
    source = tree / key.entry.path
    if not source.is_dir():
        return False
    root = caches_dir(home)
    root.mkdir(parents=True, exist_ok=True)
    final = root / key.key
    if (final / "meta.json").is_file():
        return False
    tmp = root / f".tmp-{key.key}-{uuid.uuid4().hex[:8]}"
    try:
        target = tmp / "paths" / key.entry.path
        target.parent.mkdir(parents=True)
        copy_tree(source, target)
        meta = {
            "key": key.key,
            "path": key.entry.path,
            "files": key.files,
            "source": str(tree),
            "relocate": _naming(tree, source),
            "created_at": time.time(),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            tmp.rename(final)
        except OSError:  # another worker's copy won: it is as good as ours
            return False
        return True
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def fingerprint(path: Path) -> str | None:
    """What ``path``'s files are now, as one hash of their stat data (activities/lib/
    stat_listing.py): anything a step wrote, added or removed under it changes it. None when
    ``path`` is not a real directory, or cannot be read (then it is not trusted: restored)."""
    if path.is_symlink() or not path.is_dir():
        return None
    listing, whole = stat_listing(path)
    if not whole:
        return None
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def copy_tree(source: Path, target: Path) -> None:
    """``cp -a --reflink=auto``: modes, symlinks and times kept; copy-on-write clones where
    the file system supports them (btrfs, XFS, APFS…), a plain copy otherwise."""
    done = subprocess.run(
        ["cp", "-a", "--reflink=auto", str(source), str(target)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise OSError(f"cannot copy {source} to {target}: {done.stderr.strip()[:300]}")


def _naming(tree: Path, folder: Path) -> list[str]:
    """Files under ``folder`` whose content names ``tree`` (paths relative to ``tree``)."""
    needle = str(tree).encode()
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            try:
                if path.is_symlink() or path.stat().st_size > RELOCATE_MAX_BYTES:
                    continue
                if needle in path.read_bytes():
                    found.append(str(path.relative_to(tree)))
            except OSError:
                continue
    return sorted(found)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
