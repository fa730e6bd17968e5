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
import logging
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, checkout
from activities.lib.process import exit_description, run_process
from activities.lib.remote_repo import local_path
from activities.lib.sandbox import SandboxPlan, describe_limit
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from activities.lib.step_sandbox import step_sandbox
from activities.lib.workspace import cache
from activities.lib.workspace.pool import Slot, checkout_slot
from activities.lib.workspace.ports import leased_ports, port_env
from schemas.spec import WorkspaceSpec

_log = logging.getLogger("uet.workspace")


@dataclass
class Prepared:
    """What the step runs with."""

    env: dict[str, str] = field(default_factory=dict)
    #: Cached and included paths: never part of a patch.
    private_paths: tuple[str, ...] = ()
    setup_ran: bool = False
    cache_hits: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: Seconds per preparation step (listing, checkout, include, caches, setup): logged, and
    #: what bench/workspace.py breaks the time outside the tool and the gates down by.
    steps: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = round(self.steps.get(name, 0.0) + time.monotonic() - started, 4)


def user_work_tree(repo: Git, repo_path: str) -> Path | None:
    """The user's work tree (what ``include`` copies from); None for a bare repository, and
    for one given by URL (there is no work tree of theirs on a worker)."""
    root = local_path(repo_path)
    return None if root is None or repo.git_dir.resolve() == root else root


def private_paths(spec: WorkspaceSpec) -> tuple[str, ...]:
    """Globs (git pathspec ``glob`` magic) for everything the workspace puts in a checkout."""
    out: list[str] = []
    for entry in spec.cache:
        path = entry.path.strip("/")
        out += [path, f"{path}/**"]
    out += [p.strip("/") for p in spec.include]
    return tuple(out)


@contextlib.asynccontextmanager
async def workspace_checkout(
    spec: WorkspaceSpec,
    *,
    state: StateDir,
    repo: Git,
    repo_path: str,
    commit: str,
    scratch: Path,
) -> AsyncIterator[tuple[Slot, Prepared]]:
    """A checkout of ``commit`` (pooled: activities/lib/workspace/pool.py) ready for the
    step, the tool's or the gates', its ports held meanwhile."""
    started = time.monotonic()
    ready = Prepared(env=dict(spec.env), private_paths=private_paths(spec))
    needed = bool(spec.include or spec.setup or spec.cache)
    with ready.step("listing"):  # of the key files only, when they are named literally
        patterns = [pattern for entry in spec.cache for pattern in entry.key]
        keyed = await cache.tree_listing(repo, commit, patterns) if spec.cache else {}
    keys = cache.cache_keys(keyed, spec.cache, spec.setup)
    wanted = {key.entry.path: key.key for key in keys}
    async with contextlib.AsyncExitStack() as held:
        with ready.step("checkout"):
            fallback = scratch / "tree"
            slot = await held.enter_async_context(
                checkout_slot(state.home, repo, commit, wanted, fallback=fallback)
            )
        ready.env.update(port_env(held.enter_context(leased_ports(state.home, spec.ports))))
        if needed:
            step = _Step(spec, state, repo, repo_path, commit, slot.tree, scratch, ready)
            with ready.step("include"):
                await step.include()
            await step.caches_or_setup(keys, slot.caches)
            with ready.step("seal"):
                await asyncio.to_thread(slot.seal, [key.entry.path for key in keys])
        ready.seconds = round(time.monotonic() - started, 3)
        yield slot, ready
        # One line per step: what its workspace cost, the step's own additions (the tool's
        # capture) included.
        _log.info(
            "workspace used",
            extra={
                "scratch": str(scratch),
                "commit": commit,
                "reused": slot.reused,
                "setup_ran": ready.setup_ran,
                "seconds": ready.seconds,
                "steps": dict(ready.steps),
            },
        )


@dataclass
class _Step:
    """One step's checkout being made ready."""

    spec: WorkspaceSpec
    state: StateDir
    repo: Git
    repo_path: str
    commit: str
    tree: Path
    scratch: Path
    ready: Prepared

    async def include(self) -> None:
        """Untracked files of the user's work tree (``.env``, local config) copied in: read,
        never written; a tracked path keeps the commit's content."""
        user_tree = user_work_tree(self.repo, self.repo_path)
        if not self.spec.include or user_tree is None:
            return
        found = {
            path.relative_to(user_tree).as_posix(): path
            for path in _matches(user_tree, self.spec.include)
        }
        tracked = await cache.tree_listing(self.repo, self.commit, found)
        for relative, path in sorted(found.items()):
            if relative in tracked or path.is_symlink() or not path.is_file():
                continue  # a symlink could lead a tool back into the user's tree
            target = self.tree / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)

    async def caches_or_setup(self, keys: list[cache.CacheKey], kept: dict[str, str]) -> None:
        """Every cache restored (or kept by a reused checkout), else setup run and the
        missing caches saved; one checkout populates a key while the others wait for it."""
        home = self.state.home
        missing = [
            k for k in keys if cache.lookup(home, k) is None and kept.get(k.entry.path) != k.key
        ]
        async with contextlib.AsyncExitStack() as held:
            with self.ready.step("wait"):
                await held.enter_async_context(cache.populating(home, missing))
            # Whoever held the lock before may have saved them meanwhile.
            found = [cache.lookup(home, key) for key in keys]
            if keys and all(
                folder is not None or kept.get(key.entry.path) == key.key
                for key, folder in zip(keys, found, strict=True)
            ):
                for key, folder in zip(keys, found, strict=True):
                    if kept.get(key.entry.path) != key.key:  # a reused checkout may have it
                        assert folder is not None
                        with self.ready.step("restore"):
                            await asyncio.to_thread(cache.restore, folder, key, self.tree)
                    elif folder is not None:
                        cache.touch(folder)
                    self.ready.cache_hits.append(key.entry.path)
                return
            if not self.spec.setup:
                return
            with self.ready.step("setup"):
                await self.setup()
            self.ready.setup_ran = True
            with self.ready.step("save"):
                for key, folder in zip(keys, found, strict=True):
                    if folder is None:
                        await asyncio.to_thread(cache.save, home, key, self.tree)

    async def setup(self) -> None:
        """The setup commands in order, within ``setup_timeout_s``; once more on a fresh
        checkout when they fail."""
        for attempt in (1, 2):
            env = step_env(
                {**self.ready.env, "UET_SETUP_ATTEMPT": str(attempt)},
                passthrough=self.spec.env_passthrough,
            )
            # Installing dependencies needs the network: setup has it unless the spec says no.
            sandbox = step_sandbox(
                self.spec.sandbox,
                "setup",
                tree=self.tree,
                repo=self.repo,
                repo_path=self.repo_path,
                state=self.state,
                scratch=self.scratch,
                env=env,
            )
            failure = await _run_setup(self.spec, env, sandbox, self.tree, self.scratch, attempt)
            if failure is None:
                return
            if attempt == 1:
                shutil.rmtree(self.tree)
                self.tree.mkdir()
                await checkout(self.repo, self.commit, self.tree)
                await self.include()
                continue
            log = await asyncio.to_thread(
                self.state.artifacts.put_file, self.scratch / "setup.log", "text/plain"
            )
            raise ApplicationError(
                f"setup_failed: {failure} (after a second try on a fresh checkout); its log is "
                f"artifact {log.sha256[:12]} ({log.uri}); fix the workspace's setup commands "
                "or what they need",
                {"reason_code": "setup_failed", "log": log.model_dump(mode="json")},
                type="SetupFailed",
                non_retryable=True,
            )


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
            relative = path.relative_to(root)
            if ".git" not in relative.parts and fnmatch.fnmatch(relative.as_posix(), pattern):
                found.append(path)
    return sorted(set(found))


async def _run_setup(
    spec: WorkspaceSpec,
    env: dict[str, str],
    sandbox: SandboxPlan | None,
    tree: Path,
    scratch: Path,
    attempt: int,
) -> str | None:
    deadline = time.monotonic() + spec.setup_timeout_s
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
            sandbox=sandbox,
        )
        _append(scratch / "setup.log", scratch / f"setup-{attempt}.log")
        if run.limit_hit is not None and sandbox is not None:
            return f"`{shown}` {describe_limit(run.limit_hit, sandbox.limits)}"
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
