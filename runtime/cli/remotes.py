"""`uet fetch` (a run on a repository given by URL, into the user's clone) and `uet workers`
(who runs what: live workers, what they offer, what they are doing)."""

from __future__ import annotations

import argparse
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.git import open_repository, redact_url, run_git
from activities.lib.remote_repo import is_url
from runtime.cli.base import command, run_id
from runtime.connect import connect_existing, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, err, out
from runtime.records import current_record
from runtime.settings import Settings
from runtime.workers import worker_table


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "fetch",
        fetch,
        "bring a run's branches from the URL it ran on into your clone (uet's refs only)",
        ["uet fetch 01JABC…", "uet fetch 01JABC… --repo ~/src/project"],
    )
    run_id(s)
    s.add_argument(
        "--repo",
        default=".",
        metavar="PATH",
        help="your clone of the repository (default: the current directory)",
    )
    s.add_argument(
        "--url",
        metavar="URL",
        help="fetch from here instead of the URL the run used (the same remote reached by "
        "another name from this machine)",
    )

    s = command(
        sub,
        "workers",
        workers,
        "live workers: the tools and labels they offer and what they run now",
        ["uet workers", "uet workers --json"],
    )
    s.add_argument("--json", dest="as_json", action="store_true", help="a JSON list on stdout")


# -- uet fetch ---------------------------------------------------------------------------------


def refspecs(run_id: str) -> list[str]:
    """The run's branches and tags, into the same names: uet's own refs, nothing of yours."""
    return [
        f"+refs/heads/uet/{run_id}/*:refs/heads/uet/{run_id}/*",
        f"+refs/tags/uet/{run_id}/*:refs/tags/uet/{run_id}/*",
    ]


def fetch_hint(url: str, run_id: str) -> str:
    """What ``uet run`` prints at the end of a run on a URL."""
    specs = " ".join(f"'{s}'" for s in refspecs(run_id))
    return (
        f"the result is on {redact_url(url)}: `uet fetch {run_id}` in your clone "
        f"(or `git fetch {redact_url(url)} {specs}`)"
    )


async def fetch(run_id: str, repo: str, url: str | None) -> int:
    settings = Settings.from_env()
    client = await connect_existing(target_from_env())
    record = (await current_record(client, run_id, settings)).record
    if not is_url(record.repo_path):
        raise UserError(
            f"run {run_id} ran on {record.repo_path} itself, not on a URL: its branches are "
            f"there already (git branch --list 'uet/{run_id}/*' in that repository)"
        )
    url = url or record.repo_path
    path = Path(repo).expanduser().resolve()
    try:
        git = await open_repository(path)
    except ApplicationError as exc:  # not there, or not a repository
        raise UserError(f"--repo {repo}: {exc.message}; run it in your clone") from None
    fetched = await run_git(
        "fetch", "--no-write-fetch-head", "--", url, *refspecs(run_id),
        cwd=path, env={"GIT_DIR": str(git.git_dir)}, check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        said = fetched.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(
            f"fetching run {run_id} from {redact_url(url)} failed: "
            f"{said[-1] if said else 'git failed'}",
            exit_code=ExitCode.FAILED,
        )
    listed = await run_git(
        "for-each-ref", "--format=%(refname:short) %(objectname:short)",
        f"refs/heads/uet/{run_id}/", cwd=path, env={"GIT_DIR": str(git.git_dir)},
    )  # fmt: skip
    for line in listed.text.splitlines():
        out.print(line)
    err.print(
        f"fetched run {run_id}'s refs from {redact_url(url)}; the result: "
        f"[bold]uet/{run_id}/integration[/] (your branches and work tree are untouched)"
    )
    return ExitCode.COMPLETED


# -- uet workers -------------------------------------------------------------------------------


async def workers(as_json: bool) -> int:
    settings = Settings.from_env()
    client = await connect_existing(target_from_env())
    table = await worker_table(client, settings.task_queue)
    if as_json:
        emit_json([row.as_json() for row in table])
        return ExitCode.COMPLETED
    if not table:
        err.print(
            f"no live worker on task queue {settings.task_queue!r}; start one with `uet worker`"
        )
        return ExitCode.COMPLETED
    from rich.table import Table

    view = Table(box=None, pad_edge=False)
    for name in ("worker", "tools", "labels", "code", "running"):
        view.add_column(name)
    for row in table:
        view.add_row(
            row.identity.split(" ")[0],
            ", ".join(row.tools) or "-",
            ", ".join(row.labels) or "-",
            row.code or "?",
            "; ".join(row.running) or "idle",
        )
    out.print(view)
    codes = {row.code for row in table if row.code}
    if len(codes) > 1:
        err.print(
            f"[bold red]workers run {len(codes)} different versions of uet's code[/]: a run's "
            "workflow code must be the same on every worker; upgrade them together"
        )
    return ExitCode.COMPLETED
