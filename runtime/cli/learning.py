"""`uet db`: the telemetry database's schema (what uet learns from runs lives there)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager

from alembic.util import CommandError
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled, redacted
from runtime.cli.base import command
from runtime.errors import ExitCode, UserError
from runtime.output import out
from runtime.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def usage() -> int:
        db.print_help()
        return ExitCode.INVALID_INPUT

    db = command(
        sub,
        "db",
        usage,
        "the telemetry database: its schema version, migrations up and down",
        ["uet db current", "uet db upgrade", "uet db downgrade -1"],
    )
    actions = db.add_subparsers(
        dest="db_action", metavar="ACTION", help="`uet db ACTION --help` for more"
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
