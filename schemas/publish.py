"""Publishing a run on its forge: what the publish activity is given, and what it did.

The phase publishes itself as it ends (``forge.publish``); ``uet pr RUN`` publishes a finished
run again through PublishWorkflow. Either way the activity reads the token from its worker's
environment (``forge.token_env``) — the token never travels in a payload or a history.
"""

from __future__ import annotations

from pydantic import Field

from schemas.base import Model
from schemas.forge import ForgeSpec, IssueCommentRef, PullRequestRef
from schemas.ledger import LedgerEntry
from schemas.run import RunRecord
from schemas.spec import PhaseSpec


class PublishInput(Model):
    record: RunRecord = Field(description="its journal lists the ledger parts written so far")
    ledger: list[LedgerEntry] = Field(default_factory=list, description="not yet written out")
    forge: ForgeSpec
    title: str = Field(description="the pull request's title")
    base_ref: str | None = Field(
        default=None, description="the phase's base_ref: the target when forge.base is unset"
    )
    dependencies: dict[str, list[str]] = Field(
        default_factory=dict, description="the phase's DAG, for the stack and the report"
    )
    issues: dict[str, int] = Field(
        default_factory=dict, description="workstream → the issue it came from"
    )
    open_pull_requests: bool = Field(
        default=True, description="false: only comment on the issues (a run that failed)"
    )

    @classmethod
    def of(
        cls,
        phase: PhaseSpec,
        record: RunRecord,
        ledger: list[LedgerEntry],
        forge: ForgeSpec | None = None,
        *,
        open_pull_requests: bool = True,
    ) -> PublishInput:
        """What publishing ``record`` needs of its phase: forge, title, DAG and issues."""
        spec = forge or phase.forge
        assert spec is not None, "a phase with forge:, or a forge given"
        title = spec.pr.title or (
            f"{phase.phase_id}: {phase.title}" if phase.title else phase.phase_id
        )
        return cls(
            record=record,
            ledger=ledger,
            forge=spec,
            title=title,
            base_ref=phase.base_ref,
            dependencies={ws.workstream_id: list(ws.dependencies) for ws in phase.workstreams},
            issues={ws.workstream_id: ws.issue for ws in phase.workstreams if ws.issue},
            open_pull_requests=open_pull_requests,
        )


class PublishResult(Model):
    pull_requests: list[PullRequestRef] = Field(default_factory=list)
    comments: list[IssueCommentRef] = Field(default_factory=list)
    problems: list[str] = Field(
        default_factory=list, description="what could not be done (a comment refused, say)"
    )
