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
trust, so the index's hash after each reset is kept and an index that changed is thrown away,
every file written anew. Git config, hooks and attributes of the slot are rewritten or removed
before uet runs git in it: the tool may have changed them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from activities.lib.git import Git, checkout, objects_dir

#: Slots per repository: more steps at once than this make checkouts of their own.
MAX_SLOTS = 16
#: What a slot's git config is reset to (what `git init` writes, nothing a tool added).
CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n"


@dataclass
class Slot:
    tree: Path
    git: Git
    #: Cached directories (path → cache key) already in the tree and still valid.
    caches: dict[str, str] = field(default_factory=dict)
    reused: bool = False


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
    taken = _take(folder)
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
        if meta is None or not (tree / ".git").is_dir() or meta.get("repo") != str(repo.git_dir):
            shutil.rmtree(slot_dir, ignore_errors=True)
            tree.mkdir(parents=True)
            git = await checkout(repo, commit, tree)
            slot = Slot(tree, git)
            meta = {"repo": str(repo.git_dir), "caches": {}}
        else:
            git = Git(git_dir=tree / ".git", work_tree=tree)
            kept = {p: k for p, k in meta.get("caches", {}).items() if keep.get(p) == k}
            await _reset(git, repo, commit, kept, meta.get("index"))
            slot = Slot(tree, git, caches=kept, reused=True)
        meta["index"] = _index_hash(tree)
        meta["caches"] = dict(slot.caches)
        meta["commit"] = commit
        _write(meta_path, meta)
        yield slot
        # What the step leaves for the next one: the caches it restored or saved.
        meta["caches"] = {p: k for p, k in keep.items() if (tree / p).is_dir()}
        _write(meta_path, meta)
    finally:
        os.close(lock)


async def _reset(
    git: Git, repo: Git, commit: str, kept: dict[str, str], index_hash: str | None
) -> None:
    """The slot back to what a fresh checkout of ``commit`` is, but for ``kept``."""
    dot = git.git_dir
    (dot / "config").write_text(CONFIG)
    shutil.rmtree(dot / "hooks", ignore_errors=True)
    for name in ("attributes", "exclude", "sparse-checkout"):
        with contextlib.suppress(FileNotFoundError):
            (dot / "info" / name).unlink()
    (dot / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (dot / "objects" / "info" / "alternates").write_text(f"{objects_dir(repo)}\n")
    if index_hash is None or _index_hash(git.work_tree or dot.parent) != index_hash:
        with contextlib.suppress(FileNotFoundError):
            (dot / "index").unlink()  # every file is written anew
    await git.update_ref("refs/heads/uet", commit)
    await git.run("symbolic-ref", "HEAD", "refs/heads/uet")
    await git.run("reset", "--quiet", "--hard", "refs/heads/uet")
    excludes = [arg for path in kept for arg in ("-e", f"/{path.strip('/')}")]
    await git.run("clean", "-ffdxq", *excludes)


def _index_hash(tree: Path) -> str | None:
    index = tree / ".git" / "index"
    try:
        return hashlib.sha256(index.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _take(folder: Path) -> tuple[int, int] | None:
    """A free slot's lock (fd) and number (a new number when all in use are taken); None
    when MAX_SLOTS are in use."""
    for number in range(MAX_SLOTS):
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
