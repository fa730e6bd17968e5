"""`uet pr` — a finished run's integration branch pushed to the forge and one pull request
opened for it, or updated when it is open already (a second `uet pr` never opens another)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.lib.forges import ForgeError, open_forge, repository_of
from activities.lib.forges.publish import publish
from activities.lib.forges.push import push_env
from activities.lib.git import Git, open_repository, redact_url, run_git
from activities.lib.parts import read_document
from activities.lib.remote_repo import is_url, open_mirror
from runtime.artifact_store import artifact_store
from runtime.cli.base import command, run_id
from runtime.connect import connect_existing, phase_handle, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.records import current_record, load
from runtime.settings import Settings
from schemas.forge import ForgeSpec
from schemas.run import PhaseState, RunDocument, RunInput
from schemas.spec import PhaseSpec


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
    repo, user_repo = await _repository(record.repo_path, record.head_sha, settings)
    url = await _remote_url(spec.remote, user_repo, record.repo_path)
    repository = spec.repository or repository_of(url)
    if repository is None:
        raise UserError(
            f"cannot tell OWNER/REPO from {redact_url(url)}; pass --repository or set "
            "forge.repository"
        )
    token = os.environ.get(spec.token_variable())
    if not token:
        raise UserError(
            f"${spec.token_variable()} is not set: export the forge token there (or name "
            "another variable with --token-env / forge.token_env)"
        )
    target = spec.base or phase.base_ref or await _default_branch(repo, url, token, spec.kind)
    ledger = (await load(run_id)).ledger
    deps = {ws.workstream_id: list(ws.dependencies) for ws in phase.workstreams}
    title = spec.pr.title or (f"{phase.phase_id}: {phase.title}" if phase.title else phase.phase_id)
    try:
        forge = open_forge(spec, repository, token)
        try:
            refs = await publish(
                forge, spec, repo, url, token, record, ledger, deps, target,
                title=title, dashboard=os.environ.get("UET_DASHBOARD_URL"),
            )  # fmt: skip
        finally:
            await forge.aclose()
    except ForgeError as error:
        raise UserError(
            f"{error}; the run's result is intact — `uet pr {run_id}` again once fixed",
            exit_code=ExitCode.FAILED,
        ) from None
    except ApplicationError as error:  # the push, one line already
        raise UserError(error.message, exit_code=ExitCode.FAILED) from None
    if as_json:
        emit_json([r.model_dump(mode="json") for r in refs])
        return ExitCode.COMPLETED
    for ref in refs:
        what = "opened" if ref.created else "updated"
        out.print(f"{what} #{ref.number} {ref.url}  ({ref.head} → {ref.base})", highlight=False)
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
        text = read_document(artifact_store(settings.home), run_input.document)
        return RunDocument.model_validate_json(text).phase
    raise UserError(f"run {run_id} has no history to read its phase from")


async def _repository(repo_path: str, head: str, settings: Settings) -> tuple[Git, Path | None]:
    """Where the run's commits are: the user's repository, or (for a run on a URL) this
    machine's own mirror of it, fetched."""
    if is_url(repo_path):
        return await open_mirror(settings.home, repo_path, [head]), None
    path = Path(repo_path)
    return await open_repository(path), path


async def _remote_url(remote: str, user_repo: Path | None, repo_path: str) -> str:
    if is_url(remote):
        return remote
    if user_repo is None:  # a run on a URL: its remote is that URL
        return repo_path
    got = await run_git("config", "--get", f"remote.{remote}.url", cwd=user_repo, check=False)
    if got.returncode != 0 or not got.text:
        raise UserError(
            f"{user_repo} has no git remote {remote!r}; pass --remote NAME|URL or set forge.remote"
        )
    return got.text


async def _default_branch(repo: Git, url: str, token: str, kind: str) -> str:
    """The remote's HEAD branch, asked with the same one-process credentials as the push."""
    listed = await run_git(
        "ls-remote", "--symref", "--", url, "HEAD",
        cwd=repo.git_dir, env=push_env(repo, url, token, kind), check=False,
    )  # fmt: skip
    for line in listed.text.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    raise UserError(f"cannot tell the default branch of {redact_url(url)}; pass --base BRANCH")


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
