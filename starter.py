"""The ``uet`` command line: parse arguments, connect, delegate to runtime.

Exit codes: 0 completed, 1 failed, 2 invalid input, 3 Temporal unreachable or not started,
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from importlib import metadata
from typing import NoReturn

from runtime import commands, convert, logs, reports, reviewing, runs, services
from runtime.errors import UserError

RUN = "RUN"  # metavar of every run id
RUN_HELP = "the run id (a ULID, printed when the run started; `uet runs` lists them)"


def _version() -> str:
    try:
        return metadata.version("uet")
    except metadata.PackageNotFoundError:
        return "unknown"


def duration(text: str) -> float:
    """``90``, ``90s``, ``30m``, ``2h`` or ``1d`` → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration; write e.g. 90s, 30m, 2h or 1d"
        )
    scale = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}[match.group(2) or "s"]
    return float(match.group(1)) * scale


def money(text: str) -> float:
    try:
        value = float(text.lstrip("$"))
    except ValueError:
        value = 0.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of dollars above 0")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="uet",
        description="Durable orchestrator for AI coding work, on Temporal.",
        epilog="examples:\n  uet run phase.yaml --repo ./myrepo\n  uet runs --status failed",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"uet {_version()}")
    p.add_argument(
        "--log-format",
        choices=["console", "json"],
        default="console",
        help="how log lines look (default: console)",
    )
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="`uet COMMAND --help` for more"
    )

    def command(name: str, help: str, examples: list[str]) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            epilog="examples:\n" + "\n".join(f"  {e}" for e in examples),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    spec_help = "the phase file (YAML or JSON)"

    s = command(
        "validate", "check a phase file; every problem, one per line", ["uet validate phase.yaml"]
    )
    s.add_argument("spec", metavar="SPEC", help=spec_help)

    s = command(
        "convert",
        "legacy UET workstream JSON files → one phase file (YAML)",
        [
            "uet convert legacy/ -o phase.yaml",
            "uet convert a.json b.json -o phase.yaml --phase-id PH-7 --force",
        ],
    )
    s.add_argument(
        "legacy",
        nargs="+",
        metavar="LEGACY_DIR_OR_FILE",
        help="legacy JSON files, or directories (their *.json, sorted)",
    )
    s.add_argument("-o", "--output", required=True, help="the phase file to write (.yaml)")
    s.add_argument("--phase-id", help="default: the files' phase_id or name, else PH-LEGACY")
    s.add_argument("--title", help="default: the files' title, name or description")
    s.add_argument("--force", action="store_true", help="replace an existing output file")

    s = command(
        "plan",
        "waves, critical path and speedup bound of a phase",
        ["uet plan phase.yaml", "uet plan phase.yaml --json | jq .waves"],
    )
    s.add_argument("spec", metavar="SPEC", help=spec_help)
    s.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")

    s = command(
        "run",
        "run a phase on Temporal and follow it to its end",
        [
            "uet run phase.yaml --repo ./myrepo",
            "uet run phase.yaml --repo ./myrepo --detach",
            "uet run phase.yaml --repo ./myrepo --no-review --json > record.json",
        ],
    )
    s.add_argument("spec", metavar="SPEC", help=spec_help)
    s.add_argument(
        "--repo",
        required=True,
        metavar="DIR",
        help="the git repository to work on (never touched but under uet/ refs)",
    )
    s.add_argument("--json", action="store_true", help="print the run record as JSON on stdout")
    s.add_argument(
        "--detach",
        action="store_true",
        help="start the run (and a background worker if none runs) and return",
    )
    s.add_argument(
        "--no-worker",
        action="store_true",
        help="run no worker in this process: rely on workers running elsewhere",
    )
    s.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how fast a dead worker's activities move elsewhere (default 30)",
    )
    reviews_group = s.add_mutually_exclusive_group()
    reviews_group.add_argument(
        "--review-timeout",
        type=duration,
        metavar="DURATION",
        help="how long a review may wait for a person (90s, 30m, 2h, 1d), then the phase's "
        "on_review_timeout decides; overrides review_timeout_s",
    )
    reviews_group.add_argument(
        "--no-review",
        action="store_true",
        default=None,
        help="nobody answers reviews: a failing workstream fails instead of asking, approval "
        "and budget reviews are rejected (the default when stdin is not a terminal and the "
        "phase sets no review_timeout_s)",
    )

    s = command(
        "runs",
        "find runs: the newest first, from Temporal's visibility",
        ["uet runs", "uet runs --status awaiting_review", "uet runs --phase PH-DEMO --json"],
    )
    s.add_argument("--status", choices=runs.STATUSES, help="only runs in this state")
    s.add_argument("--phase", metavar="PHASE_ID", help="only runs of this phase")
    s.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    s.add_argument("--json", action="store_true", help="a JSON list on stdout")

    s = command(
        "status",
        "the record of a running or finished run",
        ["uet status 01JABC…", "uet status 01JABC… --json | jq .workstreams"],
    )
    s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
    s.add_argument("--json", action="store_true", help="the run record as JSON on stdout")

    s = command(
        "ledger",
        "every patch of a run and what happened to it",
        ["uet ledger 01JABC…", "uet ledger 01JABC… --json"],
    )
    s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
    s.add_argument("--json", action="store_true", help="a list of ledger entries")

    s = command(
        "show",
        "a workstream's reviews, patches, ledger history, gates and diff",
        ["uet show 01JABC… ws-api"],
    )
    s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
    s.add_argument("workstream_id", metavar="WORKSTREAM", help="the workstream's id")

    s = command(
        "reviews",
        "pending reviews, of one run or of every run",
        ["uet reviews", "uet reviews 01JABC… --json"],
    )
    s.add_argument("run_id", nargs="?", metavar=RUN, help="only this run's (default: every run)")
    s.add_argument("--json", action="store_true", help="a JSON list on stdout")

    decisions = {
        "approve": "let the workstream proceed (overrides a quarantine; raises a budget)",
        "reject": "drop the workstream; its dependents are blocked",
        "retry": "run the workstream again, unchanged",
        "adjust": "run it again with your instructions for the tool",
    }
    for name, what in decisions.items():
        example = f"uet {name} 01JABC… ws-api --comment 'known flaky test'"
        if name == "adjust":
            example = "uet adjust 01JABC… ws-api --instructions 'keep the public API as it is'"
        s = command(name, what, [example])
        s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
        s.add_argument(
            "workstream_id", metavar="WORKSTREAM", help="the workstream whose review this answers"
        )
        s.add_argument("--comment", default="", help="why, for the record")
        s.add_argument("--reviewer", help="who decides (default: your user name)")
        if name == "adjust":
            s.add_argument(
                "--instructions",
                required=True,
                help="what the tool should do differently (added to its prompt)",
            )
        if name == "reject":
            s.add_argument("--rollback", action="store_true", help="and roll the phase back")
        if name == "approve":
            s.add_argument(
                "--budget-increase",
                type=money,
                metavar="USD",
                help="a budget review: raise the limit by this many dollars",
            )

    no_worker = "run no worker in this process even when none serves the task queue"
    s = command("cancel", "stop a run: kill its tools, undo its work", ["uet cancel 01JABC…"])
    s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
    s.add_argument("--no-worker", action="store_true", help=no_worker)

    s = command(
        "rollback",
        "undo a run's waves (all, or those after --to-wave)",
        ["uet rollback 01JABC…", "uet rollback 01JABC… --to-wave 1 --reason 'bad API'"],
    )
    s.add_argument("run_id", metavar=RUN, help=RUN_HELP)
    s.add_argument(
        "--to-wave",
        type=int,
        default=None,
        metavar="N",
        help="keep waves (eager: steps) 1..N; default: undo everything",
    )
    s.add_argument("--reason", default="", help="why, for the record")
    s.add_argument("--no-worker", action="store_true", help=no_worker)

    s = command(
        "server",
        "the embedded Temporal server: foreground, start, stop or status",
        ["uet server", "uet server start", "uet server status", "uet server stop"],
    )
    s.add_argument(
        "action",
        nargs="?",
        choices=["start", "stop", "status"],
        help="start: in the background; stop: end it and the background worker; "
        "status: what runs (default: run it in the foreground)",
    )

    command(
        "worker",
        "run a worker in the foreground (same as python worker.py)",
        ["uet worker", "TEMPORAL_ADDRESS=temporal:7233 uet worker"],
    )
    return p


def dispatch(args: argparse.Namespace) -> int:
    match args.command:
        case "validate":
            return commands.validate(args.spec)
        case "convert":
            return convert.convert_command(
                args.legacy, args.output, args.phase_id, args.title, args.force
            )
        case "plan":
            return commands.plan(args.spec, args.json)
        case "run":
            request = commands.RunRequest(
                args.spec,
                args.repo,
                args.json,
                args.detach,
                args.no_worker,
                args.heartbeat_timeout,
                args.review_timeout,
                args.no_review,
            )
            return asyncio.run(commands.run(request))
        case "runs":
            return asyncio.run(runs.runs(args.status, args.phase, args.limit, args.json))
        case "status":
            return asyncio.run(runs.status(args.run_id, args.json))
        case "ledger":
            return asyncio.run(reports.ledger(args.run_id, args.json))
        case "show":
            return asyncio.run(reports.show(args.run_id, args.workstream_id))
        case "reviews":
            return asyncio.run(reviewing.reviews(args.run_id, args.json))
        case "approve" | "reject" | "retry" | "adjust":
            decision = reviewing.DecisionRequest(
                args.run_id,
                args.workstream_id,
                args.command,
                args.reviewer,
                args.comment,
                getattr(args, "instructions", ""),
                getattr(args, "rollback", False),
                getattr(args, "budget_increase", None),
            )
            return asyncio.run(reviewing.decide(decision))
        case "cancel":
            return asyncio.run(reviewing.cancel(args.run_id, own_worker=not args.no_worker))
        case "rollback":
            return asyncio.run(
                reviewing.rollback(
                    args.run_id, args.to_wave, args.reason, own_worker=not args.no_worker
                )
            )
        case "server":
            return services.server(args.action)
        case "worker":
            return services.worker()
    raise AssertionError(args.command)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_format, level="WARNING")
    try:
        return dispatch(args)
    except UserError as error:
        for line in error.lines:
            print(f"uet: {line}", file=sys.stderr)
        return error.exit_code
    except commands.Interrupted as interrupted:
        for line in interrupted.lines:
            print(f"uet: {line}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("uet: interrupted", file=sys.stderr)
        return 130


def cli() -> NoReturn:
    """The console entry point. Exits without interpreter finalization: the Temporal client's
    native threads may still be winding down, and tearing Python down under them can abort
    the process after the work is done (seen with `uet run --detach`)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
