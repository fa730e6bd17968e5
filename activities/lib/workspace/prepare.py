"""A checkout made ready for a tool or for gates: included files copied in, caches restored
(or setup run and the caches saved), the workspace's env and ports.

Setup that fails is tried once more on a fresh checkout; a second failure is final
(``SetupFailed``, reason code ``setup_failed``, category ``environment``): no tool, no fix
attempt can install what the project's setup could not.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, checkout, clean_env
from activities.lib.process import exit_description, run_process
from activities.lib.state_dir import StateDir
from activities.lib.workspace import cache
from activities.lib.workspace.ports import leased_ports, port_env
from schemas.spec import WorkspaceSpec


@dataclass
class Prepared:
    """What the step runs with."""

    env: dict[str, str] = field(default_factory=dict)
    #: Cached and included paths: never part of a patch.
    private_paths: tuple[str, ...] = ()
    setup_ran: bool = False
    cache_hits: list[str] = field(default_factory=list)
    seconds: float = 0.0


def user_work_tree(repo: Git, repo_path: str) -> Path | None:
    """The user's work tree (what ``include`` copies from); None for a bare repository."""
    root = Path(repo_path).resolve()
    return None if repo.git_dir.resolve() == root else root


async def wanted_caches(spec: WorkspaceSpec, repo: Git, commit: str) -> dict[str, str]:
    """Cached path → key, for ``commit``: what a reused checkout may keep."""
    keys = await cache.cache_keys(repo, commit, spec.cache, spec.setup)
    return {key.entry.path: key.key for key in keys}


def private_paths(spec: WorkspaceSpec) -> tuple[str, ...]:
    """Globs (git pathspec ``glob`` magic) for everything the workspace puts in a checkout."""
    out: list[str] = []
    for entry in spec.cache:
        path = entry.path.strip("/")
        out += [path, f"{path}/**"]
    out += [p.strip("/") for p in spec.include]
    return tuple(out)


@contextlib.asynccontextmanager
async def prepared(
    spec: WorkspaceSpec,
    *,
    state: StateDir,
    repo: Git,
    user_tree: Path | None,
    commit: str,
    tree: Path,
    scratch: Path,
    kept: dict[str, str] | None = None,
) -> AsyncIterator[Prepared]:
    """``tree`` (a checkout of ``commit``) ready for the step, its ports held meanwhile.
    ``kept``: cached paths (→ key) a reused checkout has already."""
    started = time.monotonic()
    with leased_ports(state.home, spec.ports) as ports:
        env = {**spec.env, **port_env(ports)}
        ready = Prepared(env=env, private_paths=private_paths(spec))
        if spec.include or spec.setup or spec.cache:
            await _include(spec, repo, user_tree, commit, tree)
            await _caches_or_setup(
                spec, ready, state, repo, commit, tree, scratch, user_tree, kept or {}
            )
        ready.seconds = round(time.monotonic() - started, 3)
        yield ready


async def _include(
    spec: WorkspaceSpec, repo: Git, user_tree: Path | None, commit: str, tree: Path
) -> None:
    """Untracked files of the user's work tree (``.env``, local config) copied in: read, never
    written; a tracked path keeps the commit's content."""
    if not spec.include or user_tree is None:
        return
    tracked = set((await repo.out("ls-tree", "-r", "-z", "--name-only", commit)).split("\0"))
    for path in _matches(user_tree, spec.include):
        relative = path.relative_to(user_tree).as_posix()
        if relative in tracked or path.is_symlink() or not path.is_file():
            continue  # a symlink could lead a tool back into the user's tree
        target = tree / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)


def _matches(root: Path, patterns: list[str]) -> list[Path]:
    found: list[Path] = []
    for pattern in patterns:
        pattern = pattern.strip("/")
        if not any(ch in pattern for ch in "*?["):
            candidate = root / pattern
            if candidate.exists():
                found.append(candidate)
            continue
        for path in root.glob(pattern):
            if ".git" not in path.relative_to(root).parts and fnmatch.fnmatch(
                path.relative_to(root).as_posix(), pattern
            ):
                found.append(path)
    return sorted(set(found))


async def _caches_or_setup(
    spec: WorkspaceSpec,
    ready: Prepared,
    state: StateDir,
    repo: Git,
    commit: str,
    tree: Path,
    scratch: Path,
    user_tree: Path | None,
    kept: dict[str, str],
) -> None:
    keys = await cache.cache_keys(repo, commit, spec.cache, spec.setup)
    found = [cache.lookup(state.home, key) for key in keys]
    missing = [
        k for k, f in zip(keys, found, strict=True) if f is None and kept.get(k.entry.path) != k.key
    ]
    async with cache.populating(state.home, missing):
        # Whoever held the lock before may have saved them meanwhile.
        found = [cache.lookup(state.home, key) for key in keys]
        await _restore_or_setup(
            spec, ready, state, repo, commit, tree, scratch, user_tree, kept, keys, found
        )


async def _restore_or_setup(
    spec: WorkspaceSpec,
    ready: Prepared,
    state: StateDir,
    repo: Git,
    commit: str,
    tree: Path,
    scratch: Path,
    user_tree: Path | None,
    kept: dict[str, str],
    keys: list[cache.CacheKey],
    found: list[Path | None],
) -> None:
    if keys and all(
        folder is not None or kept.get(key.entry.path) == key.key
        for key, folder in zip(keys, found, strict=True)
    ):
        for key, folder in zip(keys, found, strict=True):
            if kept.get(key.entry.path) != key.key:  # a reused checkout may have it already
                assert folder is not None
                await asyncio.to_thread(cache.restore, folder, key, tree)
            elif folder is not None:
                cache.touch(folder)
            ready.cache_hits.append(key.entry.path)
        return
    if not spec.setup:
        return
    await _setup(spec, ready, state, repo, commit, tree, scratch, user_tree)
    ready.setup_ran = True
    for key, folder in zip(keys, found, strict=True):
        if folder is None:
            await asyncio.to_thread(cache.save, state.home, key, tree)


async def _setup(
    spec: WorkspaceSpec,
    ready: Prepared,
    state: StateDir,
    repo: Git,
    commit: str,
    tree: Path,
    scratch: Path,
    user_tree: Path | None,
) -> None:
    """The setup commands in order, within ``setup_timeout_s``; once more on a fresh
    checkout when they fail."""
    for attempt in (1, 2):
        failure = await _run_setup(spec, ready, tree, scratch, attempt)
        if failure is None:
            return
        if attempt == 1:
            shutil.rmtree(tree)
            tree.mkdir()
            await checkout(repo, commit, tree)
            await _include(spec, repo, user_tree, commit, tree)
            continue
        log = state.artifacts.put_file(scratch / "setup.log", "text/plain")
        raise ApplicationError(
            f"setup_failed: {failure} (after a second try on a fresh checkout); its log is "
            f"artifact {log.sha256[:12]} ({log.uri}); fix the workspace's setup commands or "
            "what they need",
            {"reason_code": "setup_failed", "log": log.model_dump(mode="json")},
            type="SetupFailed",
            non_retryable=True,
        )


async def _run_setup(
    spec: WorkspaceSpec, ready: Prepared, tree: Path, scratch: Path, attempt: int
) -> str | None:
    deadline = time.monotonic() + spec.setup_timeout_s
    env = clean_env({**ready.env, "UET_SETUP_ATTEMPT": str(attempt)})
    for command in spec.setup:
        left = deadline - time.monotonic()
        shown = command if isinstance(command, str) else " ".join(command)
        if left <= 0:
            return f"`{shown}` did not start: setup_timeout_s ({spec.setup_timeout_s:g}s) used up"
        run = await run_process(
            command,
            cwd=tree,
            env=env,
            timeout_s=left,
            log_path=scratch / f"setup-{attempt}.log",
        )
        _append(scratch / "setup.log", scratch / f"setup-{attempt}.log")
        if run.timed_out:
            return f"`{shown}` timed out (setup_timeout_s {spec.setup_timeout_s:g}s)"
        if run.exit_code != 0:
            tail = run.tail.strip().splitlines()[-1:] if run.tail.strip() else []
            why = exit_description(run.exit_code).removeprefix("command ")
            return f"`{shown}` {why}" + (f": {tail[0][:200]}" if tail else "")
    return None


def _append(target: Path, part: Path) -> None:
    if part.is_file():
        with target.open("ab") as out:
            out.write(part.read_bytes())
        part.unlink()
