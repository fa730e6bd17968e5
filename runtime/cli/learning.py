"""What uet learns from runs: `uet errors` (the error engine and the errors seen), and `uet db`
(the telemetry database's schema)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from activities.lib.errors.engine import classify
from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled, redacted
from runtime.cli.base import command
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, out
from runtime.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    errors = _group(
        sub,
        "errors",
        "the error engine: what uet makes of a failure, and the failures it has seen",
        ["uet errors classify build.log", "pytest 2>&1 | uet errors classify -"],
    )
    s = command(
        errors,
        "classify",
        errors_classify,
        "the signature and category uet gives a failure's output",
        ["uet errors classify build.log", "pytest 2>&1 | uet errors classify - --json"],
    )
    s.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="the output to classify (default -: standard input)",
    )
    s.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="{signature, category, rule, key, lines} on stdout",
    )

    actions = _group(
        sub,
        "db",
        "the telemetry database: its schema version, migrations up and down",
        ["uet db current", "uet db upgrade", "uet db downgrade -1"],
    )
    command(
        actions, "current", db_current, "which migration the database is at", ["uet db current"]
    )
    s = command(
        actions,
        "upgrade",
        db_upgrade,
        "migrate to the newest schema (or to REVISION)",
        ["uet db upgrade", "uet db upgrade 0001"],
    )
    s.add_argument("revision", nargs="?", default="head", help="a revision id (default: head)")
    s = command(
        actions,
        "downgrade",
        db_downgrade,
        "undo migrations down to REVISION",
        ["uet db downgrade -1", "uet db downgrade base"],
    )
    s.add_argument("revision", help="a revision id, -1 (one back) or base (everything)")


def _group(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help: str,
    examples: list[str],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """A command of commands (`uet db current`): alone, it prints its help."""

    def usage() -> int:
        parser.print_help()
        return ExitCode.INVALID_INPUT

    parser = command(sub, name, usage, help, examples)
    return parser.add_subparsers(
        dest=f"{name}_action", metavar="ACTION", help=f"`uet {name} ACTION --help` for more"
    )


# -- uet errors ---------------------------------------------------------------------------------


def errors_classify(file: str, as_json: bool) -> int:
    if file == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(file).read_text("utf-8", errors="replace")
        except FileNotFoundError:
            raise UserError(
                f"{file}: no such file; pass a file of failure output, or - for stdin"
            ) from None
        except OSError as exc:
            raise UserError(f"{file}: cannot read it ({exc.strerror or exc})") from None
    result = classify(text)
    if as_json:
        emit_json(
            {
                "signature": result.signature,
                "category": result.category,
                "rule": result.rule,
                "key": list(result.key),
                "lines": list(result.lines),
            }
        )
        return ExitCode.COMPLETED
    out.print(f"{result.signature}  {result.category}  (rule {result.rule})", markup=False)
    for part in result.key:
        out.print(f"  key: {part}", markup=False)
    for line in result.lines[:10]:
        out.print(f"  from: {line}", markup=False)
    return ExitCode.COMPLETED


# -- uet db -------------------------------------------------------------------------------------


@contextmanager
def telemetry() -> Iterator[Telemetry]:
    if learning_disabled():
        raise UserError(
            "learning is off (UET_DISABLE_LEARNING is set): uet neither reads nor writes its "
            "telemetry database; unset it to use `uet db`"
        )
    url = database_url(Settings.from_env().home)
    try:
        store = Telemetry(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UserError(f"UET_DATABASE_URL={redacted(url)} is not a database URL ({exc})") from None
    try:
        yield store
    except CommandError as exc:
        raise UserError(f"{exc}; `uet db current` says where the database is") from None
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise UserError(
            f"the telemetry database {redacted(url)} cannot be used ({reason}); check "
            "UET_DATABASE_URL",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        ) from None
    finally:
        store.close()


def db_current() -> int:
    with telemetry() as store:
        current, head = store.current(), store.head()
        where = redacted(store.url)
        if current is None:
            out.print(f"{where}: not created yet (it is, on first use, at revision {head})")
        else:
            newest = " (the newest)" if current == head else f" (newest: {head}; `uet db upgrade`)"
            out.print(f"{where}: at revision {current}{newest}")
    return ExitCode.COMPLETED


def db_upgrade(revision: str) -> int:
    with telemetry() as store:
        store.upgrade(revision)
        out.print(f"{redacted(store.url)}: at revision {store.current()}")
    return ExitCode.COMPLETED


def db_downgrade(revision: str) -> int:
    with telemetry() as store:
        store.downgrade(revision)
        now = store.current()
        out.print(f"{redacted(store.url)}: at revision {now or 'base (no tables)'}")
    return ExitCode.COMPLETED
