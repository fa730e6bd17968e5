"""The ``uet`` command line: parse arguments, connect, delegate to runtime.commands.

Exit codes: 0 completed, 1 failed, 2 invalid input, 3 Temporal unreachable or not started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import NoReturn

from runtime import commands, convert, logs, reports, reviewing
from runtime.errors import UserError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="uet", description="Durable orchestrator for AI coding work.")
    p.add_argument("--log-format", choices=["console", "json"], default="console")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("validate", help="check a phase file; every problem, one per line")
    s.add_argument("spec")

    s = sub.add_parser("convert", help="legacy UET workstream JSON files → one phase file (YAML)")
    s.add_argument("legacy", nargs="+", metavar="LEGACY_DIR_OR_FILE",
                   help="legacy JSON files, or directories (their *.json, sorted)")  # fmt: skip
    s.add_argument("-o", "--output", required=True, help="the phase file to write (.yaml)")
    s.add_argument("--phase-id", help="default: the files' phase_id or name, else PH-LEGACY")
    s.add_argument("--title", help="default: the files' title, name or description")
    s.add_argument("--force", action="store_true", help="replace an existing output file")

    s = sub.add_parser("plan", help="waves, critical path and speedup bound of a phase")
    s.add_argument("spec")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("run", help="run a phase on Temporal")
    s.add_argument("spec")
    s.add_argument("--repo", required=True, help="the git repository to work on")
    s.add_argument("--json", action="store_true", help="print the run record as JSON on stdout")
    s.add_argument("--detach", action="store_true", help="start the run and return")
    s.add_argument("--no-worker", action="store_true", help="rely on workers running elsewhere")
    s.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how fast a dead worker's activities move elsewhere (default 30)",
    )

    s = sub.add_parser("status", help="the record of a running or finished run")
    s.add_argument("run_id")
    s.add_argument("--json", action="store_true")

    s = sub.add_parser("ledger", help="every patch of a run and what happened to it")
    s.add_argument("run_id")
    s.add_argument("--json", action="store_true", help="a list of ledger entries")

    s = sub.add_parser("show", help="a workstream's patches, ledger history, gates and diff")
    s.add_argument("run_id")
    s.add_argument("workstream_id")

    s = sub.add_parser("reviews", help="pending reviews, of one run or of every run")
    s.add_argument("run_id", nargs="?")
    s.add_argument("--json", action="store_true")

    for name, what in (("approve", "let the workstream proceed (overrides a quarantine)"),
                       ("reject", "drop the workstream; its dependents are blocked"),
                       ("retry", "run the workstream again, unchanged"),
                       ("adjust", "run it again with your instructions for the tool")):  # fmt: skip
        s = sub.add_parser(name, help=what)
        s.add_argument("run_id")
        s.add_argument("workstream_id")
        s.add_argument("--comment", default="")
        s.add_argument("--reviewer", help="who decides (default: your user name)")
        if name == "adjust":
            s.add_argument("--instructions", required=True)
        if name == "reject":
            s.add_argument("--rollback", action="store_true", help="and roll the phase back")

    s = sub.add_parser("cancel", help="stop a run: kill its tools, undo its work")
    s.add_argument("run_id")

    s = sub.add_parser("rollback", help="undo a run's waves (all, or those after --to-wave)")
    s.add_argument("run_id")
    s.add_argument("--to-wave", type=int, default=None, metavar="N")
    s.add_argument("--reason", default="")

    s = sub.add_parser("server", help="run the embedded Temporal server; `server stop` ends it")
    s.add_argument("action", nargs="?", choices=["stop"])

    sub.add_parser("worker", help="run a worker (same as python worker.py)")
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
                args.spec, args.repo, args.json, args.detach, args.no_worker, args.heartbeat_timeout
            )
            return asyncio.run(commands.run(request))
        case "status":
            return asyncio.run(commands.status(args.run_id, args.json))
        case "ledger":
            return asyncio.run(reports.ledger(args.run_id, args.json))
        case "show":
            return asyncio.run(reports.show(args.run_id, args.workstream_id))
        case "reviews":
            return asyncio.run(reviewing.reviews(args.run_id, args.json))
        case "approve" | "reject" | "retry" | "adjust":
            decision = reviewing.DecisionRequest(
                args.run_id, args.workstream_id, args.command, args.reviewer, args.comment,
                getattr(args, "instructions", ""), getattr(args, "rollback", False),
            )  # fmt: skip
            return asyncio.run(reviewing.decide(decision))
        case "cancel":
            return asyncio.run(reviewing.cancel(args.run_id))
        case "rollback":
            return asyncio.run(reviewing.rollback(args.run_id, args.to_wave, args.reason))
        case "server":
            return commands.server(args.action)
        case "worker":
            return commands.worker()
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
    except KeyboardInterrupt:
        print("uet: interrupted; a started run stays open in Temporal — `uet worker` continues it",
              file=sys.stderr)  # fmt: skip
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
