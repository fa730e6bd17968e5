"""A workstream's tool run: the tool the router chose, and the next in its chain when one
fails (fallback); what the runs cost and which tool made the patch."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    TimeoutError,
    TimeoutType,
    is_cancelled_exception,
)

from workflows.failures import Failed, cause_message, last_lines
from workflows.journal import Journal
from workflows.steps import QUICK, StepOptions, Steps
from workflows.steps import tool as tool_options
from workflows.versions import patched

with workflow.unsafe.imports_passed_through():
    from activities.ready_patch import ReadyPatchActivities
    from activities.tools import ToolActivities
    from activities.workers import WorkerActivities
    from schemas.events import EventType
    from schemas.patch import ValidatePatchInput
    from schemas.ready_patch import ReadyPatchInput, ReadyPatchResult
    from schemas.refs import tool_queue
    from schemas.run import OffersInput, WaitingNote, WorkstreamInput
    from schemas.tools import Feedback, ToolAttempt, ToolReason, ToolRunInput, ToolRunResult
    from schemas.workspace import CommitPatchInput


#: workflow.patched id: tool runs go to their tool's task queue (issue 17).
TOOL_QUEUES = "tool-queues"
#: workflow.patched id: a ready patch is applied on the workstream's own worker, as a local
#: activity in the workflow task that starts the workstream (issue 20).
READY_PATCH_LOCAL = "ready-patch-applied-locally"
#: workflow.patched id: a ready patch is applied, validated and committed in one local
#: activity, not three (issue 20; activities/ready_patch.py).
READY_IN_ONE_STEP = "ready-patch-in-one-step"
#: workflow.patched id: a tool's patch is validated and committed in the tool's own activity,
#: on its tool's queue (issue 20; activities/ready_patch.py).
TOOL_TAKES_ITS_PATCH = "tool-patch-in-its-step"
#: The tool that applies a ready patch: uet's own git work, which every worker can do.
READY_PATCH = "patch"
#: The longest a waiting tool run goes between looks at who offers it.
MAX_WAIT = timedelta(minutes=5)


class ToolChain:
    def __init__(self, input: WorkstreamInput, journal: Journal, steps: Steps) -> None:
        self.input = input
        self.ws = input.workstream
        self.journal = journal
        self.steps = steps
        self.cost_usd = 0.0
        self.attempts: list[ToolAttempt] = []
        #: The tool that made the latest patch, and why it was the one.
        self.used = (self.ws.execution_request.tool_id, "")
        #: The steps after a ready patch's run, when they go with it (run's ``then``); and
        #: what they made of it.
        self._then: tuple[ValidatePatchInput, CommitPatchInput] | None = None
        self.taken: ReadyPatchResult | None = None
        #: Started ahead of its slot: the phase its tool asks for it, until a tool run has
        #: ended (the slot is the workstream's from then on, to its end).
        self.slot_from = input.slot_from

    def ready_patch_alone(self) -> bool:
        """The chain is a ready patch alone, applied on this worker (READY_PATCH_LOCAL)."""
        return (
            self._chain() == [READY_PATCH]
            and self.input.patch_file is not None
            and patched(READY_PATCH_LOCAL)
        )

    def takes_its_patch(self) -> bool:
        """The patch's validation and commit go in the step that makes it: a ready patch's
        local activity (READY_IN_ONE_STEP) or a tool's on its queue (TOOL_TAKES_ITS_PATCH)."""
        if self.ready_patch_alone():
            return patched(READY_IN_ONE_STEP)
        return READY_PATCH not in self._chain() and patched(TOOL_TAKES_ITS_PATCH)

    def _chain(self) -> list[str]:
        return self.input.tool_chain or [self.ws.execution_request.tool_id]

    async def run(
        self,
        attempt: int,
        feedback: Feedback | None,
        then: tuple[ValidatePatchInput, CommitPatchInput] | None = None,
    ) -> ToolRunResult:
        """The tool, or the next in the router's chain when it fails (fallback). ``then``: the
        patch's validation and commit, to run in the same activity as its tool
        (takes_its_patch); what they made is in ``taken``."""
        self._then, self.taken = then, None
        chain = self._chain()
        why = self.input.tool_reason or f"{chain[0]} (set in the spec)"
        for index, tool_id in enumerate(chain):
            failure, code, tool = await self._try_tool(tool_id, attempt, feedback)
            self.attempts.append(
                ToolAttempt(
                    tool_id=tool_id,
                    ok=failure is None,
                    reason_code=code,
                    reason=(failure or "").split("\n")[0],
                )
            )
            if failure is None:
                assert tool is not None
                self.used = (tool_id, why)
                return tool
            if index + 1 == len(chain):
                raise Failed(failure)
            self.journal.event(
                EventType.TOOL_FALLBACK,
                f"{self.ws.workstream_id}: {tool_id} failed ({code}); trying {chain[index + 1]}",
                workstream_id=self.ws.workstream_id,
                tool_id=tool_id,
                next_tool=chain[index + 1],
            )
            why = f"{chain[index + 1]}: fallback after {tool_id} failed ({code}); {why}"
        raise AssertionError("the chain is never empty")

    async def _try_tool(
        self, tool_id: str, attempt: int, feedback: Feedback | None
    ) -> tuple[str | None, ToolReason, ToolRunResult | None]:
        """(why it failed or None, reason code, result) for one tool."""
        policy = self.ws.resilience_policy
        request = self.ws.execution_request.model_copy(update={"tool_id": tool_id})
        try:
            tool = await self._on_a_capable_worker(
                tool_id,
                ToolRunInput(
                    run_id=self.input.run_id,
                    workstream_id=self.ws.workstream_id,
                    repo_path=self.input.repo_path,
                    base_sha=self.input.base_sha,
                    attempt=attempt,
                    request=request,
                    patch_file=self.input.patch_file,
                    timeout_s=policy.timeout_s,
                    feedback=feedback,
                    allowed_paths=self.ws.constraints.file_scope.allowed_paths,
                    max_budget_usd=self._budget_left(),
                    max_attempts=policy.max_attempts,
                    task_kind=self.ws.task_kind,
                    workspace=self.ws.workspace,
                    slot_from=self.slot_from,
                ),
                # On cancel, wait until the tool is really dead: compensation comes next.
                tool_options(
                    policy.timeout_s, policy.max_attempts, waits_for_slot=bool(self.slot_from)
                ),
                summary=f"{tool_id} for {self.ws.workstream_id} (attempt {attempt})",
            )
        except ActivityError as err:
            if is_cancelled_exception(err):
                raise  # the run was cancelled: end as cancelled, not as a failed workstream
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "SetupFailed":
                # The project's setup failed: not this tool's fault, and no other tool fares
                # better (no fallback); the workstream fails with setup_failed.
                raise Failed(cause_message(err)) from None
            code: ToolReason = (
                "api_error"
                if isinstance(cause, ApplicationError) and cause.type == "ToolApiError"
                else "tool_failed"
            )
            return cause_message(err), code, None
        self.slot_from = None
        usage = tool.usage
        if usage is not None and usage.cost_usd:
            self.cost_usd += usage.cost_usd
        cost = f", ${usage.cost_usd:.4f}" if usage and usage.cost_usd is not None else ""
        self.journal.event(
            EventType.TOOL_FINISHED,
            f"{self.ws.workstream_id}: {tool_id} finished in {tool.duration_s:.1f}s "
            f"({tool.outcome.replace('_', ' ')}{cost})",
            workstream_id=self.ws.workstream_id,
            tool_id=tool_id,
            outcome=tool.outcome,
            reason_code=tool.reason_code,
            exit_code=tool.exit_code,
            usage=usage.model_dump(mode="json") if usage else None,
        )
        if tool.signature is not None:
            self.journal.event(
                EventType.ERROR_CLASSIFIED,
                f"{self.ws.workstream_id}: {tool_id}: {tool.category} ({tool.signature})",
                workstream_id=self.ws.workstream_id,
                tool_id=tool_id,
                signature=tool.signature,
                category=tool.category,
            )
        if tool.outcome in ("failed", "timeout"):
            tail = last_lines(tool.output_tail)
            why = f"tool {tool.reason}\n{tail}" if tail else f"tool {tool.reason}"
            return (
                why,
                tool.reason_code or ("timeout" if tool.outcome == "timeout" else "tool_failed"),
                tool,
            )
        return None, "", tool

    async def _on_a_capable_worker(
        self, tool_id: str, input: ToolRunInput, options: StepOptions, summary: str
    ) -> ToolRunResult:
        """The tool run, on the tool's own task queue: only workers whose host has the tool
        poll it. While none picks it up, the workstream says why it waits (its status in
        ``uet status`` and the Web UI) and asks again, less often as the wait goes on.

        A ready patch runs no program: applying it is git work like validating and
        committing it, which this worker does as local activities. So it runs here too, in
        this workflow task: no task-queue round trip and no second task for the workstream."""
        if tool_id == READY_PATCH and (self._then is not None or patched(READY_PATCH_LOCAL)):
            return await self._step(input, options, summary, local=True)
        if not patched(TOOL_QUEUES):  # runs started before: the workflow's queue
            return await self.steps.run(ToolActivities.run_tool, input, options, summary=summary)
        queue = tool_queue(workflow.info().task_queue, tool_id)
        wait = self.steps.heartbeat
        waiting: str | None = None
        while True:
            try:
                result = await self._step(
                    input, options, summary, task_queue=queue, schedule_to_start=wait
                )
                break
            except ActivityError as err:
                cause = err.cause
                if not (
                    isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START
                ):
                    raise
            offers = await self.steps.run(
                WorkerActivities.tool_offers,
                OffersInput(task_queue=queue),
                QUICK,
                summary=f"who offers {tool_id}",
                local=True,
            )
            note = (
                f"no worker offers `{tool_id}`"
                if offers.workers == []
                else f"waiting for a free worker offering `{tool_id}`"
            )
            if note != waiting:
                waiting = note
                await self._tell(note)
            wait = min(wait * 2, MAX_WAIT)
        if waiting is not None:
            await self._tell(None)
        return result

    async def _step(
        self,
        input: ToolRunInput,
        options: StepOptions,
        summary: str,
        *,
        local: bool = False,
        task_queue: str | None = None,
        schedule_to_start: timedelta | None = None,
    ) -> ToolRunResult:
        """The tool run, with its patch's validation and commit when they go with it (``then``:
        a ready patch's local activity, or the tool's on its queue)."""
        if self._then is None:
            return await self.steps.run(
                ToolActivities.run_tool,
                input,
                options,
                summary=summary,
                local=local,
                task_queue=task_queue,
                schedule_to_start=schedule_to_start,
            )
        validation, commit = self._then
        take, done = (
            (ReadyPatchActivities.take_ready_patch, ": applied, validated and committed")
            if local
            else (ReadyPatchActivities.take_tool_patch, ", its patch validated and committed")
        )
        self.taken = await self.steps.run(
            take,
            ReadyPatchInput(tool=input, validation=validation, commit=commit),
            options,
            summary=summary + done,
            local=local,
            task_queue=task_queue,
            schedule_to_start=schedule_to_start,
        )
        return self.taken.tool

    async def _tell(self, note: str | None) -> None:
        """The phase shows what this workstream waits for (it asks nobody else)."""
        parent = workflow.info().parent
        if parent is None:
            return
        signal = workflow.get_external_workflow_handle(parent.workflow_id).signal(
            "workstream_waiting", WaitingNote(workstream_id=self.ws.workstream_id, note=note)
        )
        # Through gather: the SDK keeps a signal's result over a cancel that comes while it is
        # on its way, so awaited alone a cancel of this run would be lost here (and the tool
        # run scheduled again); gather raises it once the signal is done.
        await asyncio.gather(signal)

    def _budget_left(self) -> float | None:
        if self.input.max_budget_usd is None:
            return None
        return round(max(self.input.max_budget_usd - self.cost_usd, 0.0), 6)
