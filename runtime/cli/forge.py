"""`uet pr` — a finished run's integration branch pushed to the forge and one pull request
opened for it, or updated when it is open already (a second `uet pr` never opens another),
through the same activity the run publishes with as it ends; and `uet plan --from-issues`."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.lib.forges import ForgeError, open_forge
from activities.lib.journal_store import write_journal
from activities.lib.parts import read_run_document
from runtime.artifact_store import artifact_store
from runtime.cli.base import command, run_id
from runtime.cli.undo import NO_WORKER
from runtime.connect import connect_existing, phase_handle, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.records import current_record, load
from runtime.settings import Settings
from runtime.workers import served
from schemas.forge import ForgeSpec
from schemas.publish import PublishInput
from schemas.refs import publish_workflow_id
from schemas.run import PhaseState, RunInput
from schemas.spec import PhaseSpec
from workflows.publish import PublishWorkflow


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "pr",
        pr,
        "push a finished run's integration branch and open (or update) its pull request",
        [
            "uet pr 01JABC…                       # forge: from the phase file",
            "uet pr 01JABC… --forge github --repository acme/app",
            "uet pr 01JABC… --per-workstream --draft",
        ],
    )
    run_id(s)
    s.add_argument(
        "--forge", dest="kind", choices=["github", "gitlab", "gitea"], help="the forge's kind"
    )
    s.add_argument("--repository", metavar="OWNER/REPO", help="default: the remote's URL")
    s.add_argument("--remote", metavar="NAME|URL", help="git remote to push to (default origin)")
    s.add_argument("--api-url", metavar="URL", help="the forge's API root (self-hosted)")
    s.add_argument("--token-env", metavar="NAME", help="variable holding the token")
    s.add_argument("--base", metavar="BRANCH", help="the branch the pull request targets")
    s.add_argument("--per-workstream", action="store_true", help="one stacked PR per workstream")
    s.add_argument("--draft", action="store_true", help="open it as a draft")
    s.add_argument("--json", dest="as_json", action="store_true", help="the PRs as JSON")
    s.add_argument("--no-worker", action="store_true", help=NO_WORKER)


async def pr(
    run_id: str,
    kind: str | None,
    repository: str | None,
    remote: str | None,
    api_url: str | None,
    token_env: str | None,
    base: str | None,
    per_workstream: bool,
    draft: bool,
    as_json: bool,
    no_worker: bool = False,
) -> int:
    settings = Settings.from_env()
    client = await connect_existing(target_from_env())
    current = await current_record(client, run_id, settings)
    record = current.record
    if current.running:
        raise UserError(f"run {run_id} is still running; `uet pr {run_id}` once it has ended")
    if record.status != PhaseState.COMPLETED or record.head_sha is None:
        raise UserError(
            f"run {run_id} ended {record.status}: there is no result to open a pull request for"
        )
    phase = await _phase_of(client, run_id, settings)
    spec = _forge_spec(
        phase, kind, repository, remote, api_url, token_env, base, per_workstream, draft
    )
    # By reference, as for a rollback: a large run's ledger is far beyond a payload.
    view = await load(run_id)
    try:
        journal = write_journal(artifact_store(settings.home), view.ledger, [])
    except ApplicationError as exc:
        raise UserError(f"run {run_id}: {exc.message}", exit_code=ExitCode.FAILED) from None
    publishing = PublishInput.of(phase, record.model_copy(update={"journal": journal}), [], spec)
    # The workers publish (the token is read where the activity runs); when none serves the
    # task queue this process does, with this shell's environment.
    publish_id = publish_workflow_id(run_id)
    what = f"the publishing of {run_id}"
    try:
        async with served(client, settings, what, err, [publish_id], own_worker=not no_worker):
            result = await client.execute_workflow(
                PublishWorkflow.run,
                publishing,
                id=publish_id,
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
    except WorkflowAlreadyStartedError:
        raise UserError(f"a `uet pr {run_id}` is already under way ({publish_id})") from None
    except WorkflowFailureError as failure:
        cause: BaseException | None = failure.cause
        while cause is not None and not isinstance(cause, ApplicationError):
            cause = cause.__cause__
        message = cause.message if isinstance(cause, ApplicationError) else str(failure)
        refused = isinstance(cause, ApplicationError) and cause.type == "PublishRefused"
        raise UserError(
            f"{message}; the run's result is intact — `uet pr {run_id}` again once fixed",
            exit_code=ExitCode.INVALID_INPUT if refused else ExitCode.FAILED,
        ) from None
    if as_json:
        emit_json([r.model_dump(mode="json") for r in result.pull_requests])
        return ExitCode.COMPLETED
    for ref in result.pull_requests:
        what = "opened" if ref.created else "updated"
        out.print(f"{what} #{ref.number} {ref.url}  ({ref.head} → {ref.base})", highlight=False)
    for comment in result.comments:
        what = "commented on" if comment.created else "updated the comment on"
        out.print(f"{what} issue #{comment.issue} ({comment.workstream_id})", highlight=False)
    for problem in result.problems:
        err.print(f"  · {problem}", highlight=False)
    return ExitCode.COMPLETED


def _forge_spec(
    phase: PhaseSpec,
    kind: str | None,
    repository: str | None,
    remote: str | None,
    api_url: str | None,
    token_env: str | None,
    base: str | None,
    per_workstream: bool,
    draft: bool,
) -> ForgeSpec:
    """The phase's forge: with the flags over it."""
    given = phase.forge.model_dump(exclude_unset=True) if phase.forge else {}
    flags = {
        "kind": kind,
        "repository": repository,
        "remote": remote,
        "api_url": api_url,
        "token_env": token_env,
        "base": base,
    }
    given.update({k: v for k, v in flags.items() if v is not None})
    if "kind" not in given:
        raise UserError(
            "no forge: pass --forge github|gitlab|gitea (and --repository OWNER/REPO), or set "
            "forge: in the phase file"
        )
    pr_options = dict(given.get("pr") or {})
    if per_workstream:
        pr_options["per_workstream"] = True
    if draft:
        pr_options["draft"] = True
    given["pr"] = pr_options
    try:
        return ForgeSpec.model_validate(given)
    except ValueError as exc:
        raise UserError(f"forge settings: {exc}".splitlines()[0]) from None


async def _phase_of(client: Client, run_id: str, settings: Settings) -> PhaseSpec:
    """The phase the run ran: its workflow's input (a large one by reference)."""
    handle = phase_handle(client, run_id)
    async for event in handle.fetch_history_events():
        attributes = event.workflow_execution_started_event_attributes
        (run_input,) = await client.data_converter.decode(attributes.input.payloads, [RunInput])
        assert isinstance(run_input, RunInput)
        if run_input.phase is not None:
            return run_input.phase
        return read_run_document(artifact_store(settings.home), run_input.document).phase
    raise UserError(f"run {run_id} has no history to read its phase from")


# -- uet plan --from-issues --------------------------------------------------------------------


async def plan_from_issues(
    repository: str,
    label: str | None,
    milestone: str | None,
    output: str | None,
    kind: str | None,
    api_url: str | None,
    token_env: str | None,
) -> int:
    """Open issues → a phase file that validates; what could not be used, one line each."""
    import yaml

    from activities.lib.forges.issues_plan import phase_from_issues
    from runtime.specfile import load_spec

    if output is None:
        raise UserError("--from-issues writes a phase file: give it with -o phase.yaml")
    fields: dict[str, object] = {"kind": kind or "github", "repository": repository}
    if api_url:
        fields["api_url"] = api_url
    if token_env:
        fields["token_env"] = token_env
    try:
        spec = ForgeSpec.model_validate(fields)
    except ValueError as exc:
        raise UserError(f"--from-issues {repository}: {exc}".splitlines()[0]) from None
    token = os.environ.get(spec.token_variable())
    if not token:
        raise UserError(f"${spec.token_variable()} is not set: export the forge token there")
    try:
        forge = open_forge(spec, repository, token)
        try:
            chosen = await forge.list_issues(state="open", label=label, milestone=milestone)
            closed = await forge.list_issues(state="closed")
        finally:
            await forge.aclose()
    except ForgeError as error:
        raise UserError(str(error), exit_code=ExitCode.FAILED) from None
    name = re.sub(r"[^A-Za-z0-9]+", "-", repository).strip("-").upper()
    plan = phase_from_issues(
        chosen,
        phase_id=f"PH-{name}"[:64],
        title=f"Open issues of {repository}" + (f" labelled {label}" if label else ""),
        closed=[i.number for i in closed],
    )
    # The run publishes where the issues are, and comments on each of them as it ends.
    plan.phase["forge"] = spec.model_dump(
        mode="json", include={"kind", "repository", "api_url", "token_env"}, exclude_none=True
    )
    if not plan.phase["workstreams"]:
        raise UserError(
            f"{repository} has no open issue to plan" + (f" with label {label!r}" if label else "")
        )
    target = Path(output)
    target.write_text(
        "# Written by `uet plan --from-issues`: one workstream per open issue.\n"
        + yaml.safe_dump(plan.phase, sort_keys=False, allow_unicode=True)
    )
    for line in plan.problems:
        err.print(f"  · {line}", highlight=False)
    load_spec(str(target))  # the phase it wrote validates (else: one line per problem)
    err.print(
        f"wrote {target}: {len(plan.phase['workstreams'])} workstreams from the open issues "
        f"of {repository}" + (f"; {len(plan.problems)} notes above" if plan.problems else "")
    )
    return ExitCode.COMPLETED
