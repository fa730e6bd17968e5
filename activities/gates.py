"""Acceptance gates: commands run in a fresh checkout of a commit, in ``after`` order."""

from __future__ import annotations

from temporalio import activity

from activities.lib.errors.engine import Classification, classify
from activities.lib.git import checkout, clean_env, open_repository
from activities.lib.process import missing_program, run_process
from activities.lib.state_dir import StateDir
from activities.lib.telemetry.recorder import (
    ExecutionFact,
    Fact,
    ResolutionFact,
    error_fact,
    now,
)
from schemas.gates import GateResult, GateRunInput, GateRunResult
from schemas.spec import GateSpec


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


class GateActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    async def run_gates(self, input: GateRunInput) -> GateRunResult:
        repo = await open_repository(input.repo_path)
        scratch = self.state.scratch(input.run_id, input.label, f"gates-{input.commit_sha[:12]}")
        tree = scratch / "tree"
        tree.mkdir()
        await checkout(repo, input.commit_sha, tree)
        results: list[GateResult] = []
        classified: dict[str, Classification] = {}
        failed: set[str] = set()
        for gate in gate_order(input.gates):
            blockers = [a for a in gate.after if a in failed]
            if blockers:
                failed.add(gate.gate_id)
                results.append(
                    GateResult(
                        gate_id=gate.gate_id,
                        status="skipped",
                        reason=f"after failed gate {', '.join(blockers)}",
                    )
                )
                continue
            env = clean_env(
                {
                    **input.env,
                    **gate.env,
                    "UET_RUN_ID": input.run_id,
                    "UET_GATE_ID": gate.gate_id,
                    "UET_COMMIT_SHA": input.commit_sha,
                }
            )
            run = await run_process(
                gate.command,
                cwd=tree,
                env=env,
                timeout_s=gate.timeout_s,
                log_path=scratch / f"{gate.gate_id}.log",
            )
            log = self.state.artifacts.put_file(run.log_path, "text/plain")
            code = None
            if run.timed_out:
                status, reason = "timeout", f"timed out after {gate.timeout_s:g}s"
            elif run.exit_code == 0:
                status, reason = "passed", None
            elif (program := missing_program(gate.command, run)) is not None:
                # Not the change's fault: no fix attempt can install a program.
                status, code = "failed", "gate_command_not_found"
                reason = f"{code}: {program}"
            elif run.not_found:
                status, reason = "failed", "command not found"
            else:
                status, reason = "failed", f"exited with {run.exit_code}"
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
            if status != "passed":
                failed.add(gate.gate_id)
                found = (
                    classify("", code=code, detail=program or "")
                    if code is not None
                    else classify("", code="timeout", detail=f"gate {gate.gate_id}")
                    if status == "timeout"
                    else classify(run.tail)
                )
                result.signature, result.category = found.signature, found.category
                classified[gate.gate_id] = found
            results.append(result)
        tree_sha = await repo.out("rev-parse", f"{input.commit_sha}^{{tree}}")
        self.state.telemetry.record(*_facts(input, results, classified, tree_sha))
        return GateRunResult(passed=not failed, results=results)


def _facts(
    input: GateRunInput,
    results: list[GateResult],
    classified: dict[str, Classification],
    tree_sha: str,
) -> list[Fact]:
    """Each gate run, each failure's error, and each pass after a failure (a resolution)."""
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
            facts.append(
                ResolutionFact(
                    run_id=input.run_id,
                    workstream_id=ws_id,
                    attempt=input.attempt,
                    source=source,
                    at=now(),
                    resolved_by=f"attempt {input.attempt} passed",
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
