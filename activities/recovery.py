"""Self-healing: what is known to fix an error, and running a fixer on the failing tree.

A gate failed with signature S. ``find_recovery`` answers from the workstream's and the
phase's ``recoveries:`` rules and from S's active learned pattern; ``run_recovery`` runs the
fixer in a checkout of the failing commit (with the workstream's workspace: a fixer may come
from its setup) and captures the result as a patch against the workstream's base, like any
tool's change — so it is validated, applied and gated the same way, and no AI tool call is
paid for when it heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import shutil
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from activities.lib.git import Git
from activities.lib.heartbeat import heartbeating
from activities.lib.process import argv_for, run_process
from activities.lib.remote_repo import open_run_repository
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from activities.lib.step_sandbox import step_sandbox
from activities.lib.telemetry import patterns
from activities.lib.telemetry.recorder import PatternUseFact, now
from activities.lib.workspace.prepare import workspace_checkout
from activities.tools import capture_change
from schemas.learning import RecoveryLookup, RecoveryPlan, RecoveryRunInput
from schemas.spec import Command, RecoveryRule, WorkspaceSpec
from schemas.tools import ToolRunResult


@dataclass(frozen=True)
class Fixer:
    """A deterministic fixer uet knows: tried to reproduce fixes when it is installed and
    the tree has files it works on."""

    command: str
    categories: frozenset[str]
    files: tuple[str, ...]


#: Language-aware candidates for discovering recovery commands.
DEFAULT_FIXERS: tuple[Fixer, ...] = (
    Fixer("ruff check --fix .", frozenset({"lint", "syntax"}), ("*.py",)),
    Fixer("ruff format .", frozenset({"lint", "format", "syntax"}), ("*.py",)),
    Fixer("gofmt -w .", frozenset({"lint", "format"}), ("*.go",)),
    Fixer("cargo fmt", frozenset({"lint", "format"}), ("Cargo.toml",)),
)


def rule_for(rules: list[RecoveryRule], signature: str, category: str | None) -> int | None:
    """The first rule naming the signature, else the first naming the category."""
    for index, rule in enumerate(rules):
        if rule.match.signature == signature:
            return index
    for index, rule in enumerate(rules):
        if category is not None and rule.match.category == category:
            return index
    return None


def command_text(command: Command) -> str:
    return command if isinstance(command, str) else " ".join(command)


def candidate_fixers(
    paths: Iterable[str], category: str | None, phase_rules: list[RecoveryRule]
) -> list[tuple[str, float]]:
    """(command, timeout) to try on a failing tree (its tracked ``paths``): the phase's own
    fixers, then the defaults whose program is installed and whose files are in the tree."""
    found: list[tuple[str, float]] = [(command_text(r.command), r.timeout_s) for r in phase_rules]
    names = sorted({path.rsplit("/", 1)[-1] for path in paths})
    for fixer in DEFAULT_FIXERS:
        if category not in fixer.categories or shutil.which(argv_for(fixer.command)[0]) is None:
            continue
        if any(fnmatch.filter(names, pattern) for pattern in fixer.files):
            found.append((fixer.command, 120.0))
    unique: dict[str, float] = {}
    for command, timeout in found:
        unique.setdefault(command, timeout)
    return list(unique.items())


@dataclass
class Fixed:
    """A fixer's run on a checkout of the failing tree, the checkout still held."""

    ok: bool  # it exited 0 in time
    patch: bytes | None  # the tree's change against the base
    files: list[str]
    tail: str
    tree: Path
    env: dict[str, str]  # the workspace's env and ports, for gates run on the tree


@contextlib.asynccontextmanager
async def fixed_tree(
    repo: Git,
    state: StateDir,
    *,
    run_id: str,
    repo_path: str,
    start_sha: str,
    base_sha: str,
    command: Command,
    timeout_s: float,
    scratch: Path,
    env: dict[str, str],
    workspace: WorkspaceSpec,
    private_paths: tuple[str, ...] = (),
) -> AsyncIterator[Fixed]:
    """The fixer run in a checkout of ``start_sha`` with the workstream's workspace (a fixer
    such as ``ruff`` may come from the setup's environment), its change captured."""
    async with workspace_checkout(
        workspace, state=state, repo=repo, repo_path=repo_path, commit=start_sha, scratch=scratch
    ) as (slot, ready):
        fixer_env = step_env({**ready.env, **env}, passthrough=workspace.env_passthrough)
        run = await run_process(
            command,
            cwd=slot.tree,
            env=fixer_env,
            timeout_s=timeout_s,
            log_path=scratch / "recovery.log",
            heartbeat_every_s=5,
            sandbox=step_sandbox(
                workspace.sandbox,
                "fixer",
                tree=slot.tree,
                repo=repo,
                repo_path=repo_path,
                state=state,
                scratch=scratch,
                env=fixer_env,
            ),
        )
        with ready.step("capture"):
            patch, files, _ = await capture_change(
                repo,
                slot.tree,
                base_sha,
                state,
                run_id,
                (*private_paths, *ready.private_paths),
                seed_index=slot.pristine_index(),
            )
        ok = run.exit_code == 0 and not run.timed_out
        yield Fixed(ok, patch, files, run.tail[-2000:], slot.tree, ready.env)


class RecoveryActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    async def find_recovery(self, input: RecoveryLookup) -> RecoveryPlan:
        """A rule of the phase names a fixer; a learned pattern brings its guidance (and its
        fixer when no rule gives one). The kill switch and ``learning: {mode: off}`` leave
        only the rules: they are the phase's own configuration, not something learned."""
        learned = RecoveryPlan()
        if input.learning.mode != "off":
            learned = self.state.telemetry.read(
                lambda session: patterns.lookup(session, input.signature), RecoveryPlan()
            )
        index = rule_for(input.rules, input.signature, input.category)
        if index is None:
            return learned
        rule = input.rules[index]
        match = rule.match.signature or rule.match.category
        return RecoveryPlan(
            found=True,
            pattern_id=learned.pattern_id if learned.found else f"rule:{match}",
            version=learned.version if learned.found else None,
            confidence=learned.confidence,
            guidance=learned.guidance,
            command=rule.command,
            timeout_s=rule.timeout_s,
            source="rule",
        )

    @activity.defn
    @heartbeating
    async def run_recovery(self, input: RecoveryRunInput) -> ToolRunResult:
        started = time.monotonic()
        repo = await open_run_repository(
            self.state.home, input.repo_path, input.base_sha, input.start_sha
        )
        scratch = self.state.scratch(input.run_id, input.workstream_id, f"recovery-{input.attempt}")
        env = {
            "UET_RUN_ID": input.run_id,
            "UET_WORKSTREAM_ID": input.workstream_id,
            "UET_BASE_SHA": input.base_sha,
            "UET_RECOVERY": input.pattern_id,
        }
        async with fixed_tree(
            repo,
            self.state,
            run_id=input.run_id,
            repo_path=input.repo_path,
            start_sha=input.start_sha,
            base_sha=input.base_sha,
            command=input.command,
            timeout_s=input.timeout_s,
            scratch=scratch,
            env=env,
            workspace=input.workspace,
            private_paths=tuple(input.private_paths),
        ) as fixed:
            ok, patch, files, tail = fixed.ok, fixed.patch, fixed.files, fixed.tail
        log = await asyncio.to_thread(
            self.state.artifacts.put_file, scratch / "recovery.log", "text/plain"
        )
        result = ToolRunResult(
            outcome="changed",
            output_tail=tail,
            log=log,
            duration_s=round(time.monotonic() - started, 3),
        )
        if patch is None:
            # Nothing to gate: it is a failed use now (a gate run would record the others).
            result.outcome, result.reason_code = "no_change", "no_change"
            result.reason = "the recovery command changed nothing"
            if not input.pattern_id.startswith("rule:") and input.version:
                self.state.telemetry.record(
                    PatternUseFact(
                        key=f"use/{input.run_id}/{input.workstream_id}/{input.attempt}/"
                        f"{input.start_sha}",
                        pattern_id=input.pattern_id,
                        version=input.version,
                        kind="recovery",
                        run_id=input.run_id,
                        workstream_id=input.workstream_id,
                        passed=False,
                        at=now(),
                    )
                )
            return result
        result.patch = self.state.artifacts.put_bytes(patch, "text/x-diff")
        result.files_changed = files
        if not ok:
            result.reason = "the recovery command failed; its change is gated anyway"
        return result
