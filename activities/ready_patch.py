"""A patch in one step with its tool: made, validated and committed.

A ready patch (`tool_id: patch`) runs no program: applying, judging and committing it are git
and CPU work of a few milliseconds each, which the workstream's own worker does as local
activities. Run as three, each costs a round trip through the SDK's core and a new
activation of the workflow; run as one (``take_ready_patch``), the workstream's first
workflow task takes the patch from file to commit in a single local activity.

A tool run goes to its tool's task queue, on whichever host offers the tool
(``take_tool_patch``). That host has the run's repository too, as every activity does
(activities/lib/remote_repo.py: the user's path on this host, or this host's mirror of its
URL), and the artifact store the workstream reads: so it validates and commits the patch it
just captured, and the workstream's task that reads the result has nothing left to run.

Each step is the very activity method it would be on its own, so a retry of the whole (all
three are idempotent) ends as the first try did.
"""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.git import FINAL_GIT_ERRORS
from activities.lib.heartbeat import heartbeating
from activities.lib.state_dir import StateDir
from activities.patches import PatchActivities
from activities.tools import ToolActivities
from activities.workspace import WorkspaceActivities
from schemas.ready_patch import ReadyPatchInput, ReadyPatchResult


class ReadyPatchActivities:
    def __init__(self, state: StateDir) -> None:
        self.tools = ToolActivities(state)
        self.patches = PatchActivities(state)
        self.workspace = WorkspaceActivities(state)

    @activity.defn
    @heartbeating
    async def take_ready_patch(self, input: ReadyPatchInput) -> ReadyPatchResult:
        """The ready patch applied; validated; a valid one committed (a local activity)."""
        return await self._take(input)

    @activity.defn
    @heartbeating
    async def take_tool_patch(self, input: ReadyPatchInput) -> ReadyPatchResult:
        """The tool run; its patch validated; a valid one committed (on the tool's queue)."""
        return await self._take(input)

    async def _take(self, input: ReadyPatchInput) -> ReadyPatchResult:
        """What a step refuses ends the chain there, and the workstream reads it as it reads
        that step's own result."""
        tool = await self.tools.run_tool(input.tool)
        if tool.patch is None:
            return ReadyPatchResult(tool=tool)
        checked = await self.patches.validate_patch(
            input.validation.model_copy(update={"patch": tool.patch})
        )
        if not checked.report.ok:
            return ReadyPatchResult(tool=tool, validation=checked)
        # The capture's tree is the patch's (the validated artifact is the captured patch):
        # committed as it is.
        commit = input.commit.model_copy(
            update={"patch": checked.artifact.ref, "tree_sha": tool.tree_sha}
        )
        try:
            committed = await self.workspace.commit_patch(commit)
        except ApplicationError as error:
            if not (error.non_retryable or error.type in FINAL_GIT_ERRORS):
                raise  # the whole step is retried: each part of it is idempotent
            return ReadyPatchResult(tool=tool, validation=checked, commit_error=error.message)
        return ReadyPatchResult(tool=tool, validation=checked, commit=committed)
