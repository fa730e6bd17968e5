"""The bare design for bench/dag_efficiency.py: the parts a tool workstream cannot do without,
and none of uet's workflow layer around them.

A parent starts a child per workstream, by the same eager rule and priorities as uet's plan,
at most ``slots`` at once, each from the integration head of the moment; the child runs one
activity, uet's own ``take_tool_patch`` (the pooled checkout, the sandboxed tool, the capture,
the patch's validation and commit: what a uet workstream's tool step runs); the parent merges
whatever has finished with uet's own ``integrate``, as one local activity, and starts what
that readies. No plan or open activity, journal, ledger, board, budget, router, saga,
checkpoint, phase gates, report, or workstream started ahead of its slot.

What it measures is the floor with uet's parts in it: what any orchestration of them on this
machine and server costs, so uet's ratio against it is what uet's own workflows add."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.patch import FileScope, PatchPolicy, ValidatePatchInput
    from schemas.ready_patch import CAPTURE, ReadyPatchInput, ReadyPatchResult
    from schemas.refs import branch_ref, workstream_branch
    from schemas.sandbox import SandboxMode, SandboxSpec
    from schemas.spec import ExecutionRequest, WorkspaceSpec
    from schemas.tools import ToolRunInput
    from schemas.workspace import (
        CommitPatchInput,
        IntegrateInput,
        IntegrateResult,
        MergeRequest,
    )

STEP = timedelta(minutes=5)


class BareWorkstream(BaseModel):
    workstream_id: str
    dependencies: list[str]
    command: str


class BarePhase(BaseModel):
    run_id: str
    repo_path: str
    base_sha: str
    #: The integration branch's ref, made at ``base_sha`` before the phase starts.
    integration_ref: str
    slots: int
    #: Priority: the plan's eager order (activities/lib/eager_order.py), best first.
    order: list[str]
    workstreams: list[BareWorkstream]
    tool_queue: str
    #: The tools' sandbox (``SandboxSpec.mode``): uet's default, or none to see its share.
    sandbox: SandboxMode = "auto"


class BareStep(BaseModel):
    step: ReadyPatchInput
    tool_queue: str


@workflow.defn
class BareChild:
    @workflow.run
    async def run(self, input: BareStep) -> str | None:
        done = await workflow.execute_activity(
            "take_tool_patch",
            input.step,
            task_queue=input.tool_queue,
            start_to_close_timeout=STEP,
            result_type=ReadyPatchResult,
        )
        return done.commit.commit_sha if done.commit is not None else None


@workflow.defn
class BareParent:
    @workflow.run
    async def run(self, phase: BarePhase) -> str:
        deps = {w.workstream_id: set(w.dependencies) for w in phase.workstreams}
        commands = {w.workstream_id: w.command for w in phase.workstreams}
        rank = {ws: i for i, ws in enumerate(phase.order)}
        head = phase.base_sha
        pending, merged = set(deps), set[str]()
        running: dict[str, asyncio.Task[str | None]] = {}
        wave = 0
        while pending or running:
            ready = sorted((w for w in pending if deps[w] <= merged), key=rank.__getitem__)
            started = ready[: phase.slots - len(running)]
            handles = await asyncio.gather(
                *(self._start(phase, ws, commands[ws], head) for ws in started)
            )
            for ws, handle in zip(started, handles, strict=True):
                pending.discard(ws)
                running[ws] = asyncio.ensure_future(handle)
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            finished = sorted(w for w, task in running.items() if task.done())
            if not any(deps[w] & set(finished) for w in pending):
                # Nothing waits for these merges: the freed slots' next holders go first (their
                # starts confirmed, so the merge below is the next workflow task's).
                ready = sorted((w for w in pending if deps[w] <= merged), key=rank.__getitem__)
                started = ready[: phase.slots - len(running) + len(finished)]
                handles = await asyncio.gather(
                    *(self._start(phase, ws, commands[ws], head) for ws in started)
                )
                for ws, handle in zip(started, handles, strict=True):
                    pending.discard(ws)
                    running[ws] = asyncio.ensure_future(handle)
            merges = []
            for ws in finished:
                commit = running.pop(ws).result()
                assert commit is not None, f"{ws} made no commit"
                merges.append(MergeRequest(workstream_id=ws, commit_sha=commit))
            wave += 1
            result = await workflow.execute_local_activity(
                "integrate",
                IntegrateInput(
                    repo_path=phase.repo_path,
                    run_id=phase.run_id,
                    wave=wave,
                    integration_ref=phase.integration_ref,
                    expected_head=head,
                    merges=merges,
                    timestamp=workflow.time_ns() // 1_000_000_000,
                ),
                start_to_close_timeout=STEP,
                result_type=IntegrateResult,
            )
            head = result.head_sha
            merged |= set(finished)
        return head

    @staticmethod
    async def _start(
        phase: BarePhase, ws: str, command: str, head: str
    ) -> workflow.ChildWorkflowHandle[BareChild, str | None]:
        patch_id = f"{ws}-1"
        step = ReadyPatchInput(
            tool=ToolRunInput(
                run_id=phase.run_id,
                workstream_id=ws,
                repo_path=phase.repo_path,
                base_sha=head,
                attempt=1,
                request=ExecutionRequest(tool_id="shell", command=command),
                timeout_s=300,
                workspace=WorkspaceSpec(sandbox=SandboxSpec(mode=phase.sandbox)),
            ),
            validation=ValidatePatchInput(
                run_id=phase.run_id,
                workstream_id=ws,
                tool_id="shell",
                attempt=1,
                patch_id=patch_id,
                base_sha=head,
                patch=CAPTURE,
                repo_path=phase.repo_path,
                scope=FileScope(),
                policy=PatchPolicy(),
            ),
            commit=CommitPatchInput(
                repo_path=phase.repo_path,
                run_id=phase.run_id,
                workstream_id=ws,
                title=ws,
                base_sha=head,
                patch=CAPTURE,
                patch_id=patch_id,
                branch_ref=branch_ref(workstream_branch(phase.run_id, ws)),
                timestamp=workflow.time_ns() // 1_000_000_000,
            ),
        )
        return await workflow.start_child_workflow(
            BareChild.run,
            BareStep(step=step, tool_queue=phase.tool_queue),
            id=f"{workflow.info().workflow_id}/{ws}",
        )
