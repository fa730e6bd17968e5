"""Acceptance gates: commands run in a fresh checkout of a commit, in ``after`` order.

Besides the verdict, a gate run is where uet learns: each failure's error, and each pass
after a failure (a resolution, with what the fix changed and, when a known fixer reproduces
it on the failing tree, that fixer as a recovery command).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio import activity

from activities.lib.errors.engine import Classification, classify
from activities.lib.expectations import read_output, unmet_expectation
from activities.lib.git import Git
from activities.lib.heartbeat import heartbeating
from activities.lib.process import missing_program, run_process
from activities.lib.remote_repo import open_run_repository
from activities.lib.sandbox import LIMIT_REASONS, describe_limit
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from activities.lib.step_sandbox import step_sandbox
from activities.lib.telemetry.insights import is_flaky
from activities.lib.telemetry.recorder import (
    ExecutionFact,
    Fact,
    PatternUseFact,
    ResolutionFact,
    error_fact,
    now,
)
from activities.lib.workspace.cache import tree_listing
from activities.lib.workspace.prepare import workspace_checkout
from activities.recovery import candidate_fixers, fixed_tree
from schemas.gates import GateResult, GateRunInput, GateRunResult
from schemas.learning import Resolving
from schemas.spec import GateSpec

#: How far back a gate's flakiness is looked up.
FLAKY_WINDOW = timedelta(days=30)
#: What a resolution keeps of the fixing diff.
FIX_EXCERPT = 1500


def gate_order(gates: list[GateSpec]) -> list[GateSpec]:
    """Declaration order, except that a gate waits for everything in its ``after`` list.
    (Spec validation has already rejected unknown names and cycles.)"""
    done: set[str] = set()
    ordered: list[GateSpec] = []
    pending = list(gates)
    while pending:
        ready = next(g for g in pending if all(a in done for a in g.after))
        ordered.append(ready)
        done.add(ready.gate_id)
        pending.remove(ready)
    return ordered


@dataclass
class GateRun:
    results: list[GateResult] = field(default_factory=list)
    classified: dict[str, Classification] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


class GateActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def run_gates(self, input: GateRunInput) -> GateRunResult:
        # The commit a fix attempt resolves is kept on a remote by its patch tag: fetched too.
        failed = [input.resolving.failed_commit] if input.resolving else []
        repo = await open_run_repository(
            self.state.home, input.repo_path, input.commit_sha, *failed
        )
        scratch = self.state.scratch(input.run_id, input.label, f"gates-{input.commit_sha[:12]}")
        async with workspace_checkout(
            input.workspace,
            state=self.state,
            repo=repo,
            repo_path=input.repo_path,
            commit=input.commit_sha,
            scratch=scratch,
        ) as (slot, ready):
            tree = slot.tree
            # The gates see what the tool saw: setup, caches, included files, env and ports.
            within = input.model_copy(update={"env": {**ready.env, **input.env}})
            run = await self._run_all(within, repo, tree, scratch, retry_flaky=True)
        tree_sha = await repo.out("rev-parse", f"{input.commit_sha}^{{tree}}")
        details = None
        if input.resolving is not None and not run.failed:
            details = await self._resolution(input, input.resolving, repo, scratch)
        facts = _facts(input, run.results, run.classified, tree_sha, details)
        if input.applied is not None:
            facts.append(
                PatternUseFact(
                    key=f"use/{input.run_id}/{input.label}/{input.attempt}/{input.commit_sha}",
                    pattern_id=input.applied.pattern_id,
                    version=input.applied.version,
                    kind=input.applied.kind,
                    run_id=input.run_id,
                    workstream_id=input.label,
                    passed=not run.failed,
                    at=now(),
                )
            )
        self.state.telemetry.record(*facts)
        return GateRunResult(passed=not run.failed, results=run.results)

    async def _run_all(
        self, input: GateRunInput, repo: Git, tree: Path, scratch: Path, *, retry_flaky: bool
    ) -> GateRun:
        run = GateRun()
        for gate in gate_order(input.gates):
            blockers = [a for a in gate.after if a in run.failed]
            if blockers:
                run.failed.add(gate.gate_id)
                run.results.append(
                    GateResult(
                        gate_id=gate.gate_id,
                        status="skipped",
                        reason=f"after failed gate {', '.join(blockers)}",
                    )
                )
                continue
            result, found = await self._run_one(input, repo, gate, tree, scratch)
            if found is not None and retry_flaky and gate.retry_flaky and self._flaky(gate):
                # Known to fail and pass on one tree: once more before it counts against the
                # change; both verdicts stay on the record.
                first = f"{result.status}: {result.reason}"
                result, found = await self._run_one(input, repo, gate, tree, scratch, rerun=True)
                result.retried = first
            if found is not None:
                run.failed.add(gate.gate_id)
                run.classified[gate.gate_id] = found
            run.results.append(result)
        return run

    def _flaky(self, gate: GateSpec) -> bool:
        after = now() - FLAKY_WINDOW
        return self.state.telemetry.read(lambda s: is_flaky(s, gate.gate_id, after), False)

    async def _run_one(
        self,
        input: GateRunInput,
        repo: Git,
        gate: GateSpec,
        tree: Path,
        scratch: Path,
        *,
        rerun: bool = False,
    ) -> tuple[GateResult, Classification | None]:
        env = step_env(
            {
                **input.env,
                **gate.env,
                "UET_RUN_ID": input.run_id,
                "UET_GATE_ID": gate.gate_id,
                "UET_COMMIT_SHA": input.commit_sha,
            },
            passthrough=input.workspace.env_passthrough,
        )
        limits = gate.sandbox or input.workspace.sandbox
        sandbox = step_sandbox(
            limits,
            "gate",
            tree=tree,
            repo=repo,
            repo_path=input.repo_path,
            state=self.state,
            scratch=scratch,
            env=env,
        )
        run = await run_process(
            gate.command,
            cwd=tree,
            env=env,
            timeout_s=gate.timeout_s,
            log_path=scratch / f"{gate.gate_id}{'.rerun' if rerun else ''}.log",
            sandbox=sandbox,
        )
        log = await asyncio.to_thread(self.state.artifacts.put_file, run.log_path, "text/plain")
        code = program = unmet = reason = None
        passing = gate.expect.exit_code if gate.expect is not None else 0
        if run.limit_hit is not None and sandbox is not None:
            status, code = "failed", LIMIT_REASONS[run.limit_hit]
            reason = f"{code}: {describe_limit(run.limit_hit, limits.limits)}"
        elif run.timed_out:
            status, reason = "timeout", f"timed out after {gate.timeout_s:g}s"
        elif run.exit_code == passing and gate.expect is not None:
            # Ground truth beyond the exit code: the whole log (stdout and stderr), the files.
            output = read_output(run.log_path)
            unmet = unmet_expectation(gate.expect, run.exit_code, output, tree)
            status = "passed" if unmet is None else "failed"
            if unmet is not None:
                reason = f"expectation not met: {unmet}"
        elif run.exit_code == passing:
            status, reason = "passed", None
        elif (program := missing_program(gate.command, run)) is not None:
            # Not the change's fault: no fix attempt can install a program.
            status, code = "failed", "gate_command_not_found"
            reason = f"{code}: {program}"
        elif run.not_found:
            status, reason = "failed", "command not found"
        else:
            status, reason = "failed", f"exited with {run.exit_code}"
            reason += f" (expected {passing})" if passing else ""
        result = GateResult(
            gate_id=gate.gate_id,
            status=status,
            exit_code=run.exit_code,
            duration_s=round(run.duration_s, 3),
            output_tail=run.tail[-2000:],
            log=log,
            reason=reason,
            code=code,
        )
        if status == "passed":
            return result, None
        found = (
            classify("", code=code, detail=program or "")
            if code is not None
            else classify("", code="timeout", detail=f"gate {gate.gate_id}")
            if status == "timeout"
            else classify(f"{run.tail}\n{reason}")
            if unmet is not None
            else classify(run.tail)
        )
        result.signature, result.category = found.signature, found.category
        return result, found

    async def _resolution(
        self, input: GateRunInput, resolving: Resolving, repo: Git, scratch: Path
    ) -> ResolutionFact:
        """What fixed the failure: the diff from the failing commit to this one, and a fixer
        that reproduces it on the failing tree, if one does."""
        stat = await repo.out("diff", "--numstat", resolving.failed_commit, input.commit_sha)
        files = [line.split("\t", 2)[-1] for line in stat.splitlines() if line.strip()]
        diff = await repo.out(
            "diff", "-U1", "--no-color", "--no-ext-diff", resolving.failed_commit, input.commit_sha
        )
        hunks = sum(1 for line in diff.splitlines() if line.startswith("@@"))
        reproduced = None
        if resolving.learning.mode != "off" and files and input.applied is None and _has_time():
            reproduced = await self._reproduce(input, resolving, repo, scratch)
        return ResolutionFact(
            run_id=input.run_id,
            workstream_id=input.label,
            attempt=input.attempt,
            # Every gate that failed before is resolved by this pass (by source).
            source=f"gate:{resolving.gate_id}",
            at=now(),
            resolved_by=f"attempt {input.attempt} passed",
            through_attempt=input.attempt if input.applied else None,
            tool_id=resolving.tool_id,
            feedback=resolving.feedback,
            adjust=resolving.adjust,
            files=files,
            hunks=hunks,
            excerpt=diff[:FIX_EXCERPT],
            gates_ran=len(input.gates),
            gates_total=len(input.gates),
            reproduced_by=reproduced,
            pattern_id=input.applied.pattern_id if input.applied else None,
            learning=resolving.learning,
        )

    async def _reproduce(
        self, input: GateRunInput, resolving: Resolving, repo: Git, scratch: Path
    ) -> str | None:
        """The first candidate fixer that, run on the failing tree, makes every gate pass."""
        tracked = await tree_listing(repo, resolving.failed_commit)  # no checkout just to look
        candidates = candidate_fixers(tracked, resolving.category, resolving.candidates)
        for index, (command, timeout_s) in enumerate(candidates):
            if not _has_time(reserve_s=timeout_s):
                break
            where = scratch / f"fixer-{index}"
            where.mkdir()
            async with fixed_tree(
                repo,
                self.state,
                run_id=input.run_id,
                repo_path=input.repo_path,
                start_sha=resolving.failed_commit,
                base_sha=resolving.failed_commit,
                command=command,
                timeout_s=timeout_s,
                scratch=where,
                env={"UET_RUN_ID": input.run_id},
                workspace=input.workspace,
            ) as fixed:
                if fixed.patch is None:
                    continue
                within = input.model_copy(update={"env": {**fixed.env, **input.env}})
                gated = await self._run_all(within, repo, fixed.tree, where, retry_flaky=False)
            if not gated.failed:
                return command
        return None


def _has_time(reserve_s: float = 0.0) -> bool:
    """Whether discovery fits in what is left of this activity's time, with room for one more
    fixer (``reserve_s``) and the gates after it. It is extra work: a retried attempt (the
    first may have run out of time doing it) goes without."""
    if not activity.in_activity():
        return True
    info = activity.info()
    if info.attempt > 1:
        return False
    limit = info.start_to_close_timeout
    if limit is None:
        return True
    elapsed = (now() - info.started_time).total_seconds()
    # The gates have just run once: as long again, plus the fixer, plus a margin.
    return 2 * elapsed + reserve_s + 30 < limit.total_seconds()


def _facts(
    input: GateRunInput,
    results: list[GateResult],
    classified: dict[str, Classification],
    tree_sha: str,
    details: ResolutionFact | None = None,
) -> list[Fact]:
    """Each gate run, each failure's error, and each pass after a failure (a resolution; the
    one of the gate the fix attempt was fixing carries ``details``)."""
    phase = input.label.startswith("phase-")
    ws_id = "(phase)" if phase else input.label
    facts: list[Fact] = []
    for result in results:
        if result.status == "skipped":
            continue
        source = f"{'phase-gate' if phase else 'gate'}:{result.gate_id}"
        key = (
            f"gate/{input.run_id}/{input.label}/{input.attempt}/{input.commit_sha}/{result.gate_id}"
        )
        facts.append(
            ExecutionFact(
                key=key,
                run_id=input.run_id,
                workstream_id=ws_id,
                attempt=input.attempt,
                kind="gate",
                gate_id=result.gate_id,
                tree_sha=tree_sha,
                at=now(),
                duration_s=result.duration_s,
                outcome=result.status,
                reason_code=result.code,
                signature=result.signature,
            )
        )
        if result.status == "passed":
            if details is not None and details.source == source:
                facts.append(details)
                continue
            facts.append(
                ResolutionFact(
                    run_id=input.run_id,
                    workstream_id=ws_id,
                    attempt=input.attempt,
                    source=source,
                    at=now(),
                    resolved_by=f"attempt {input.attempt} passed",
                    through_attempt=input.attempt if input.applied else None,
                    pattern_id=input.applied.pattern_id if input.applied else None,
                )
            )
            continue
        if result.gate_id in classified:
            facts.append(
                error_fact(
                    classified[result.gate_id],
                    key=key,
                    run_id=input.run_id,
                    workstream_id=ws_id,
                    attempt=input.attempt,
                    source=source,
                    excerpt=result.output_tail,
                    log=result.log,
                )
            )
    return facts
