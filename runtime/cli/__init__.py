"""The ``uet`` command line. Each command group is a module of this package that declares its
commands' arguments beside the functions that run them.

Exit codes: 0 completed, 1 failed, 2 invalid input, 3 Temporal unreachable or not started,
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata

from runtime import logs
from runtime.cli import (
    forge,
    gc,
    init,
    learning,
    patterns,
    phase_files,
    remotes,
    reviews,
    run,
    runs,
    services,
    templates,
    ui,
    undo,
)
from runtime.cli.base import dispatch
from runtime.errors import UserError

#: In the order `uet --help` lists them.
GROUPS = (
    init,
    phase_files,
    run,
    runs,
    reviews,
    undo,
    remotes,
    forge,
    services,
    learning,
    patterns,
    templates,
    gc,
    ui,
)


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
    for group in GROUPS:
        group.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logs.configure(args.log_format, level="WARNING")
    try:
        return dispatch(args)
    except UserError as error:
        for line in error.lines:
            print(f"uet: {line}", file=sys.stderr)
        return error.exit_code
    except run.Interrupted as interrupted:
        for line in interrupted.lines:
            print(f"uet: {line}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("uet: interrupted", file=sys.stderr)
        return 130


def _version() -> str:
    try:
        return metadata.version("uet")
    except metadata.PackageNotFoundError:
        return "unknown"
