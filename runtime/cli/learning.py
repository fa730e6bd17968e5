"""What uet learns from runs: `uet errors` (the error engine and the errors seen), `uet
insights` (tools, gates, errors, anti-patterns), `uet telemetry` (import, prune) and `uet db`
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
from activities.lib.telemetry import insights as analysis
from activities.lib.telemetry.backfill import run_facts
from activities.lib.telemetry.recorder import Recorder
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
    s = command(
        errors,
        "list",
        errors_list,
        "the error signatures seen, by occurrences",
        ["uet errors list", "uet errors list --since 7d --json"],
    )
    s.add_argument("--since", type=days, default=30.0, metavar="DAYS", help=SINCE)
    s.add_argument("--json", dest="as_json", action="store_true", help="a JSON list on stdout")

    s = command(
        sub,
        "insights",
        insights,
        "what runs say: tools, gates, top errors and anti-patterns",
        ["uet insights", "uet insights --since 7d --report weekly.md", "uet insights --json"],
    )
    s.add_argument("--since", type=days, default=30.0, metavar="DAYS", help=SINCE)
    s.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="{since, tools, gates, errors, anti_patterns} on stdout",
    )
    s.add_argument("--report", metavar="FILE.md", help="also write a Markdown report there")

    kept = _group(
        sub,
        "telemetry",
        "what uet keeps of runs: import finished runs, forget old ones",
        ["uet telemetry import", "uet telemetry prune --older-than 90d"],
    )
    s = command(
        kept,
        "import",
        telemetry_import,
        "record finished runs from their reports in $UET_HOME/runs (default: all of them)",
        ["uet telemetry import", "uet telemetry import 01JABC…"],
    )
    s.add_argument("run_ids", nargs="*", metavar="RUN", help="only these runs")
    s = command(
        kept,
        "prune",
        telemetry_prune,
        "forget what happened before a time",
        ["uet telemetry prune", "uet telemetry prune --older-than 30d"],
    )
    s.add_argument(
        "--older-than",
        dest="older_than",
        type=days,
        default=90.0,
        metavar="DAYS",
        help="what is older than this goes: 90d (default)",
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


SINCE = "the window: 30d (default), 7d, 12h, 2w"


def days(text: str) -> float:
    """``30d``, ``12h``, ``90`` (days) → days."""
    value = text.strip().lower()
    scale = {"d": 1.0, "h": 1 / 24, "w": 7.0}.get(value[-1:])
    number = value[:-1] if scale is not None else value
    try:
        amount = float(number) * (scale or 1.0)
    except ValueError:
        amount = -1
    if amount <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time span; write e.g. 30d, 12h or 2w")
    return amount


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


def errors_list(since: float, as_json: bool) -> int:
    with telemetry() as store, store.session() as session:
        found = analysis.errors(session, analysis.since(since))
    if as_json:
        emit_json(found)
        return ExitCode.COMPLETED
    if not found:
        out.print(f"no errors recorded in the last {since:g} days")
    for error in found:
        out.print(
            f"{error['signature']}  {error['category']:<14} {error['occurrences']:>4}x  "
            f"{error['resolution_rate']:.0%} resolved  last: {error['last_run_id']} "
            f"{error['last_workstream_id']} ({error['last_source']})",
            markup=False,
        )
    return ExitCode.COMPLETED


# -- uet insights -------------------------------------------------------------------------------


def insights(since: float, as_json: bool, report: str | None) -> int:
    with telemetry() as store, store.session() as session:
        data = analysis.insights(session, analysis.since(since))
        analysis.remember(session, data["anti_patterns"])
    if report:
        try:
            Path(report).write_text(analysis.report(data), "utf-8")
        except OSError as exc:
            raise UserError(f"{report}: cannot write the report ({exc.strerror or exc})") from None
    if as_json:
        emit_json(data)
        return ExitCode.COMPLETED
    out.print(analysis.report(data), markup=False)
    return ExitCode.COMPLETED


# -- uet telemetry ------------------------------------------------------------------------------


def telemetry_import(run_ids: list[str]) -> int:
    settings = Settings.from_env()
    with telemetry() as store:
        pass  # migrated, and usable
    reports = settings.home / "runs"
    folders = (
        [reports / run for run in run_ids]
        if run_ids
        else sorted(p for p in reports.glob("*") if (p / "run.json").is_file())
    )
    recorder = Recorder(settings.home)
    for folder in folders:
        if not (folder / "run.json").is_file():
            raise UserError(f"run {folder.name}: no report in {reports}; `uet runs` lists the runs")
        recorder.record(*run_facts(folder))
    out.print(
        f"imported {len(folders)} run{'s' if len(folders) != 1 else ''} into {redacted(store.url)}"
    )
    return ExitCode.COMPLETED


def telemetry_prune(older_than: float) -> int:
    with telemetry() as store, store.session() as session:
        counts = analysis.prune(session, analysis.since(older_than))
    gone = ", ".join(f"{n} {table}" for table, n in counts.items())
    out.print(f"forgot what is older than {older_than:g} days: {gone}")
    return ExitCode.COMPLETED


# -- uet db -------------------------------------------------------------------------------------


@contextmanager
def telemetry(migrate: bool = True) -> Iterator[Telemetry]:
    """The database, brought to the newest schema first unless ``migrate`` is false (`uet db`
    moves the schema itself)."""
    if learning_disabled():
        raise UserError(
            "learning is off (UET_DISABLE_LEARNING is set): uet neither reads nor writes its "
            "telemetry database; unset it to use this command"
        )
    url = database_url(Settings.from_env().home)
    try:
        store = Telemetry(url)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UserError(f"UET_DATABASE_URL={redacted(url)} is not a database URL ({exc})") from None
    try:
        if migrate and store.current() != store.head():
            store.upgrade()
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
    with telemetry(migrate=False) as store:
        current, head = store.current(), store.head()
        where = redacted(store.url)
        if current is None:
            out.print(f"{where}: not created yet (it is, on first use, at revision {head})")
        else:
            newest = " (the newest)" if current == head else f" (newest: {head}; `uet db upgrade`)"
            out.print(f"{where}: at revision {current}{newest}")
    return ExitCode.COMPLETED


def db_upgrade(revision: str) -> int:
    with telemetry(migrate=False) as store:
        store.upgrade(revision)
        out.print(f"{redacted(store.url)}: at revision {store.current()}")
    return ExitCode.COMPLETED


def db_downgrade(revision: str) -> int:
    with telemetry(migrate=False) as store:
        store.downgrade(revision)
        now = store.current()
        out.print(f"{redacted(store.url)}: at revision {now or 'base (no tables)'}")
    return ExitCode.COMPLETED
