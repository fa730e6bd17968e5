"""After a run: one comment on each workstream's issue with its outcome and the pull request.

A comment is found again by its marker — the phase and the workstream, not the run — so a
re-run of the phase updates the comment it left last time instead of adding another.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from activities.lib.forges.base import Forge, ForgeError
from activities.lib.forges.report import OUTCOME, cell
from schemas.forge import IssueCommentRef, PullRequestRef
from schemas.ledger import LedgerEntry
from schemas.run import RunRecord

MARKER = "<!-- uet:phase={phase_id} workstream={workstream_id} -->"


def issue_comment(
    record: RunRecord,
    workstream_id: str,
    ledger: Sequence[LedgerEntry],
    pull_request: PullRequestRef | None,
    *,
    dashboard: str | None = None,
) -> str:
    """The comment's text (pure: the same run gives the same comment)."""
    state = record.workstreams[workstream_id]
    mine = [e for e in ledger if e.workstream_id == workstream_id]
    outcome = OUTCOME.get(str(state.status), str(state.status))
    lines = [
        f"**uet** ran this issue as workstream `{cell(workstream_id)}` of phase "
        f"`{cell(record.phase_id)}` (run `{record.run_id}`): {outcome}",
    ]
    facts = []
    tools = ", ".join(dict.fromkeys(e.tool_id for e in mine))
    if tools:
        facts.append(f"tool {cell(tools)}")
    attempts = max((e.attempt for e in mine), default=0)
    if attempts:
        facts.append(f"{attempts} attempt{'s' if attempts != 1 else ''}")
    if state.cost_usd:
        facts.append(f"${state.cost_usd:.4f}")
    if state.commit:
        facts.append(f"commit `{state.commit[:10]}`")
    if facts:
        lines += ["", " · ".join(facts)]
    if state.reason:
        lines += ["", f"> {cell(state.reason)}"]
    if pull_request is not None:
        lines += ["", f"Pull request: #{pull_request.number} {pull_request.url}"]
    elif record.status != "completed":
        lines += ["", f"No pull request: the run ended {record.status}."]
    if dashboard:
        lines += ["", f"[The run in the dashboard]({dashboard.rstrip('/')}/runs/{record.run_id})"]
    lines += ["", MARKER.format(phase_id=record.phase_id, workstream_id=workstream_id)]
    return "\n".join(lines) + "\n"


async def comment_on_issues(
    forge: Forge,
    record: RunRecord,
    issues: Mapping[str, int],
    ledger: Sequence[LedgerEntry],
    pull_requests: Sequence[PullRequestRef],
    *,
    dashboard: str | None = None,
) -> tuple[list[IssueCommentRef], list[str]]:
    """Write or update each issue's comment; what could not be written, one line each (a
    refused comment never undoes the pull request)."""
    single = next((p for p in pull_requests if p.workstream_id is None), None)
    per_ws = {p.workstream_id: p for p in pull_requests if p.workstream_id}
    done: list[IssueCommentRef] = []
    problems: list[str] = []
    for ws_id, number in sorted(issues.items(), key=lambda item: item[1]):
        if ws_id not in record.workstreams:
            continue
        pr = per_ws.get(ws_id) or (single if record.workstreams[ws_id].commit else None)
        body = issue_comment(record, ws_id, ledger, pr, dashboard=dashboard)
        marker = MARKER.format(phase_id=record.phase_id, workstream_id=ws_id)
        try:
            mine = [c for c in await forge.list_comments(number) if marker in c.body]
            if mine:
                if mine[-1].body != body:
                    await forge.update_comment(number, mine[-1].id, body)
                done.append(
                    IssueCommentRef(issue=number, workstream_id=ws_id, comment_id=mine[-1].id)
                )
            else:
                comment = await forge.add_comment(number, body)
                done.append(
                    IssueCommentRef(
                        issue=number, workstream_id=ws_id, comment_id=comment.id, created=True
                    )
                )
        except ForgeError as error:
            if error.retryable:
                raise  # the activity tries again later; what is written is found by its marker
            problems.append(f"issue #{number}: {error}")
    return done, problems
