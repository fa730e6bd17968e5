"""A worker's pool of checkouts: a step takes a free one and resets it to its commit instead of
making a new one, and it must be exactly what a fresh checkout would be.

``$UET_HOME/pool/<repo>/<n>/`` is one checkout (``tree/``, a standalone repository borrowing
the user's objects, as activities/lib/git.py ``checkout`` makes them) and ``slot.json``;
``<n>.lock`` is held (``flock``) while a step uses it, so a killed worker's slots are free
again at once.

Resetting: the tracked files go back to the commit (``git reset --hard``) and everything
else is removed (``git clean -ffdx``) except the workspace's cached directories whose key
still holds. ``reset --hard`` trusts the index's stat data to skip unchanged files; a tool that
wrote the slot's index (aider commits, a hostile tool could forge entries) would break that
trust, so the slot's ``.git`` is made anew on each reuse (the tool may have changed its config,
hooks, attributes or index, or replaced it with a pointer elsewhere) and uet's own copy of the
index it wrote last time is put in.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from activities.lib.git import Git, borrowing_repository, checkout, git_dir_like, reset_to
from activities.lib.workspace.cache import fingerprint

#: Slots per repository: more steps at once than this make checkouts of their own.
MAX_SLOTS = 16


@dataclass
class Slot:
    tree: Path
    git: Git
    #: Cached directories (path → cache key) already in the tree and still valid.
    caches: dict[str, str] = field(default_factory=dict)
    #: Cached directories as the step got them (path → ``cache.fingerprint``): the next step
    #: keeps one only if nothing under it changed since — a tool writing into ``.venv`` must
    #: not leave its change to the gates that follow in this checkout.
    prints: dict[str, str] = field(default_factory=dict)
    reused: bool = False
    #: uet's copy of the index its reset wrote (outside the tree), and its hash.
    index_copy: Path | None = None
    index_hash: str | None = None

    def seal(self, paths: list[str]) -> None:
        """The cached directories are as the step should get them: remember how they are."""
        for path in paths:
            print_ = self.prints.get(path) if path in self.caches else None
            print_ = print_ or fingerprint(self.tree / path)
            if print_ is not None:
                self.prints[path] = print_

    def pristine_index(self) -> Path | None:
        """An index of the commit with stat data of the files as uet left them, if its copy
        is still what uet wrote (seeds the capture: unchanged files are not hashed again)."""
        if self.index_copy is None or _hash(self.index_copy) != self.index_hash:
            return None
        return self.index_copy


def copy_index(source: Path, target: Path) -> None:
    """Copy an index file *with its mtime*. Git trusts an entry whose stat data matches the
    file only when the file is older than the index; a file written in the same second as
    the index (git compares whole seconds) is "racily clean" and hashed again. A copy with a
    new mtime would hide a tool's same-size edit made in the checkout's second: the capture
    would lose it and the next reset would leave it in the tree."""
    shutil.copy2(source, target)


def pool_dir(home: Path) -> Path:
    return home / "pool"


@contextlib.asynccontextmanager
async def checkout_slot(
    home: Path, repo: Git, commit: str, keep: dict[str, str], fallback: Path
) -> AsyncIterator[Slot]:
    """A checkout of ``commit`` from the pool (or a new one in it). ``keep``: cached paths
    and their keys wanted now; a slot keeps those whose key matches. With every slot taken,
    a fresh checkout at ``fallback``."""
    digest = hashlib.sha256(str(repo.git_dir.resolve()).encode()).hexdigest()[:16]
    folder = pool_dir(home) / digest
    folder.mkdir(parents=True, exist_ok=True)
    taken = _take(folder, _preference(folder, commit, keep))
    if taken is None:
        fallback.mkdir(parents=True, exist_ok=True)
        yield Slot(fallback, await checkout(repo, commit, fallback))
        return
    lock, number = taken
    try:
        slot_dir = folder / str(number)
        meta_path = slot_dir / "slot.json"
        meta = _read(meta_path)
        tree = slot_dir / "tree"
        usable = (
            meta is not None
            and meta.get("repo") == str(repo.git_dir)
            and tree.is_dir()
            and not tree.is_symlink()
        )
        if not usable:
            _remove(slot_dir)
            tree.mkdir(parents=True)
            # The pool's empty .git copied, as a reset does: no git init process.
            git = await checkout(repo, commit, tree, like=await git_dir_like(folder))
            slot = Slot(tree, git)
            meta = {"repo": str(repo.git_dir), "caches": {}}
        else:
            assert meta is not None
            prints: dict[str, str] = meta.get("prints") or {}
            # A cache is kept only when its key holds and nothing under it changed since the
            # last step got it (else it is restored from the cache).
            held = {p: k for p, k in meta.get("caches", {}).items() if keep.get(p) == k}
            now = {p: await asyncio.to_thread(fingerprint, tree / p) for p in held}
            kept = {p: k for p, k in held.items() if now[p] is not None and now[p] == prints.get(p)}
            git = await _reset(tree, slot_dir / "index", repo, commit, kept, folder)
            slot = Slot(tree, git, caches=kept, reused=True)
            slot.prints = {p: str(now[p]) for p in kept}
        slot.index_copy = slot_dir / "index"
        copy_index(tree / ".git" / "index", slot.index_copy)
        slot.index_hash = meta["index"] = _hash(slot.index_copy)
        meta["caches"] = dict(slot.caches)
        meta["commit"] = commit
        _write(meta_path, meta)
        yield slot
        # What the step leaves for the next one: the caches it got, and how it got them.
        meta["caches"] = {p: k for p, k in keep.items() if p in slot.prints}
        meta["prints"] = {p: slot.prints[p] for p in meta["caches"]}
        _write(meta_path, meta)
    finally:
        os.close(lock)


async def _reset(
    tree: Path, index_copy: Path, repo: Git, commit: str, kept: dict[str, str], pool: Path
) -> Git:
    """The slot back to what a fresh checkout of ``commit`` is, but for ``kept``.

    Its ``.git`` is made anew whatever the step did to it (a file pointing elsewhere, a
    symlink, hooks, config, attributes); uet's own copy of the index it wrote last time goes
    in, so that ``reset --hard`` rewrites only the files that changed since (their stat data
    differs: git compares ctime too, which no tool can set back)."""
    _remove(tree / ".git")
    # A copy of the pool's empty .git: git init's process was a third of a reset's cost.
    git = await borrowing_repository(repo, tree, like=await git_dir_like(pool))
    if index_copy.is_file():
        copy_index(index_copy, tree / ".git" / "index")
    await reset_to(git, commit)
    excludes = [arg for path in kept for arg in ("-e", f"/{path.strip('/')}")]
    await git.run("clean", "-ffdxq", *excludes)
    return git


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _remove(path: Path) -> None:
    """``path`` gone, whatever it is; a symlink is removed, never followed."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _hash(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def is_free(slot: Path) -> bool:
    """Nobody holds the lock of the slot at ``slot`` (``pool/<repo>/<n>``) now."""
    try:
        fd = os.open(slot.parent / f"{slot.name}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _preference(folder: Path, commit: str, keep: dict[str, str]) -> list[int]:
    """Slot numbers, best first: those holding the most of the wanted caches (no restore),
    then existing ones (a reset, not a new checkout), then those last at ``commit`` (fewer
    files rewritten), then the lowest. Read without the locks: a wrong guess only costs a
    restore."""

    def score(number: int) -> tuple[int, int, int, int]:
        meta = _read(folder / str(number) / "slot.json")
        caches = (meta or {}).get("caches")
        caches = caches if isinstance(caches, dict) else {}
        held = sum(1 for path, key in keep.items() if caches.get(path) == key)
        there = 0 if meta is not None else 1
        return (-held, there, 0 if (meta or {}).get("commit") == commit else 1, number)

    return sorted(range(MAX_SLOTS), key=score)


def _take(folder: Path, order: list[int]) -> tuple[int, int] | None:
    """A free slot's lock (fd) and number, in ``order`` (a new number when all in use are
    taken); None when MAX_SLOTS are in use."""
    for number in order:
        fd = os.open(folder / f"{number}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd, number
    return None


def _read(path: Path) -> dict | None:  # type: ignore[type-arg]
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict) -> None:  # type: ignore[type-arg]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)
