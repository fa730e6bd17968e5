"""Writing what happens into the telemetry database, as it happens, from activities.

Every fact has a key made of the run, the workstream, the attempt and the step, and is
written at most once: an activity retried after a crash, or run again on another worker,
counts once. A database that cannot be written never fails, slows or blocks the run: the
fact is logged in one line and kept in ``$UET_HOME/telemetry-spool/``, and written by the
next record that succeeds. ``UET_DISABLE_LEARNING=1`` turns all of it off.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from pydantic import Field
from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import ReturningInsert

from activities.lib.errors.engine import Classification
from activities.lib.telemetry import patterns
from activities.lib.telemetry.models import (
    ErrorEvent,
    ErrorPattern,
    Execution,
    Resolution,
    Run,
    WorkstreamShape,
)
from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled
from schemas.base import Model
from schemas.spec import Learning

log = logging.getLogger("uet.telemetry")
T = TypeVar("T")
_OPEN: dict[str, Telemetry] = {}


class ExecutionFact(Model):
    key: str
    run_id: str
    workstream_id: str
    attempt: int
    kind: str  # tool | gate
    at: datetime
    outcome: str
    duration_s: float = 0.0
    tool_id: str | None = None
    model: str | None = None
    task_kind: str | None = None
    gate_id: str | None = None
    scope_signature: str | None = None
    file_types: str = ""
    tree_sha: str | None = None
    reason_code: str | None = None
    signature: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None


class ErrorFact(Model):
    key: str
    signature: str
    category: str
    normalized: str = ""
    run_id: str
    workstream_id: str
    attempt: int
    source: str
    excerpt: str = ""
    log_sha256: str | None = None
    log_uri: str | None = None
    at: datetime


class ResolutionFact(Model):
    """A step that failed before passed now: its earlier errors are resolved, and each is a
    resolution the learner learns from (what the fix was told, what it changed)."""

    run_id: str
    workstream_id: str
    attempt: int
    source: str
    at: datetime
    resolved_by: str = ""
    #: Errors of attempts before this one are resolved (a recovery passes at its own attempt).
    through_attempt: int | None = None
    tool_id: str | None = None
    feedback: str = ""
    adjust: str = ""
    files: list[str] = Field(default_factory=list)
    hunks: int = 0
    excerpt: str = ""
    gates_ran: int = 0
    gates_total: int = 0
    reproduced_by: str | None = None
    pattern_id: str | None = Field(default=None, description="healed by this pattern")
    learning: Learning = Field(default_factory=Learning)


class PatternUseFact(Model):
    """A pattern was applied; the gates after it passed or not."""

    key: str
    pattern_id: str
    version: str
    kind: str
    run_id: str
    workstream_id: str
    passed: bool
    at: datetime


class RunFact(Model):
    run_id: str
    phase_id: str
    status: str
    scheduling: str = "waves"
    workstreams: int = 0
    cost_usd: float = 0.0
    started_at: datetime | None = None
    ended_at: datetime | None = None


class WorkstreamShapeFact(Model):
    """A workstream as a run planned it (activities/lib/telemetry/shapes.py)."""

    key: str
    run_id: str
    phase_id: str
    workstream_id: str
    template: str | None = None
    tool_id: str
    task_kind: str | None = None
    gate_set: str
    scope_shape: str
    spec: dict[str, Any]
    estimated_duration_s: float | None = None
    at: datetime


Fact = ExecutionFact | ErrorFact | ResolutionFact | RunFact | WorkstreamShapeFact | PatternUseFact


def now() -> datetime:
    return datetime.now(UTC)


def error_fact(
    classification: Classification,
    *,
    key: str,
    run_id: str,
    workstream_id: str,
    attempt: int,
    source: str,
    excerpt: str,
    log: Any = None,
) -> ErrorFact:
    return ErrorFact(
        key=key,
        signature=classification.signature,
        category=classification.category,
        normalized=" | ".join(classification.key)[:2000],
        run_id=run_id,
        workstream_id=workstream_id,
        attempt=attempt,
        source=source,
        excerpt=excerpt[-2000:],
        log_sha256=getattr(log, "sha256", None),
        log_uri=getattr(log, "uri", None),
        at=now(),
    )


def scope_signature(paths: Iterable[str]) -> str | None:
    scope = sorted(paths)
    return hashlib.sha256("\n".join(scope).encode()).hexdigest()[:16] if scope else None


def file_types(files: Iterable[str]) -> str:
    """The kinds of files a change touched: their extensions, sorted (``.md,.py``)."""
    kinds = {
        ("." + f.rsplit(".", 1)[-1].lower()) if "." in f.rsplit("/", 1)[-1] else "(none)"
        for f in files
    }
    return ",".join(sorted(kinds))[:200]


class Recorder:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.spool = home / "telemetry-spool"

    def record(self, *facts: Fact) -> None:
        """Write ``facts`` (in order), or keep them for later; never raises."""
        if learning_disabled() or not facts:
            return
        try:
            telemetry = self._telemetry()
            self._flush_spool(telemetry)
            with telemetry.session() as session:
                for fact in facts:
                    _write(session, fact)
        except Exception as exc:  # a broken database must not break a run
            log.warning(
                f"telemetry not written, kept for later ({type(exc).__name__}: {exc})"[:300]
            )
            self._keep(facts)

    def read(self, query: Callable[[Session], T], default: T) -> T:
        """``query`` in a session of its own, or ``default`` when learning is off or the
        database cannot be read (a run never waits for, or fails on, what it learned)."""
        if learning_disabled():
            return default
        try:
            with self._telemetry().session() as session:
                return query(session)
        except Exception as exc:
            log.warning(f"telemetry not read ({type(exc).__name__}: {exc})"[:300])
            return default

    def _telemetry(self) -> Telemetry:
        url = database_url(self.home)
        if url not in _OPEN:
            _OPEN[url] = Telemetry.open(url)
        return _OPEN[url]

    def _keep(self, facts: Iterable[Fact]) -> None:
        try:
            self.spool.mkdir(parents=True, exist_ok=True)
            for fact in facts:
                text = json.dumps(
                    {"type": type(fact).__name__, "fact": fact.model_dump(mode="json")}
                )
                name = hashlib.sha256(text.encode()).hexdigest()[:24]
                (self.spool / f"{name}.json").write_text(text)
        except OSError as exc:
            log.warning(f"telemetry spool not writable ({exc}); facts dropped")

    def _flush_spool(self, telemetry: Telemetry) -> None:
        if not self.spool.is_dir():
            return
        kinds = {
            cls.__name__: cls
            for cls in (
                ExecutionFact,
                ErrorFact,
                ResolutionFact,
                RunFact,
                WorkstreamShapeFact,
                PatternUseFact,
            )
        }
        for path in sorted(self.spool.glob("*.json")):
            doc = json.loads(path.read_text())
            fact = kinds[doc["type"]].model_validate(doc["fact"])
            with telemetry.session() as session:
                _write(session, fact)
            path.unlink()


# -- writes, each idempotent -------------------------------------------------------------------


def _write(session: Session, fact: Fact) -> None:
    if isinstance(fact, ExecutionFact):
        _insert_once(session, Execution, fact.model_dump())
    elif isinstance(fact, ErrorFact):
        _error(session, fact)
    elif isinstance(fact, ResolutionFact):
        _resolve(session, fact)
    elif isinstance(fact, WorkstreamShapeFact):
        _insert_once(session, WorkstreamShape, fact.model_dump())
    elif isinstance(fact, PatternUseFact):
        patterns.record_use(session, **fact.model_dump())
    else:
        _run(session, fact)


def _insert_once(
    session: Session, model: type[Execution | ErrorEvent | WorkstreamShape], values: dict[str, Any]
) -> bool:
    """Insert a row unless its key is there already; whether it was new. One statement on
    SQLite and PostgreSQL (``ON CONFLICT DO NOTHING``): a tool run's telemetry is on its path,
    and the ORM's look-up, savepoint and insert were a third of a trivial tool run's CPU."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        # On the session's connection: a Core statement, without the ORM's bulk-insert
        # machinery (half of the statement's cost again).
        statement = _insert_statement(dialect, model)
        return session.connection().execute(statement, values).first() is not None
    if session.scalar(select(model.id).where(model.key == values["key"])) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(model(**values))
    except IntegrityError:  # written meanwhile by another worker
        return False
    return True


@functools.cache
def _insert_statement(
    dialect: str, model: type[Execution | ErrorEvent | WorkstreamShape]
) -> ReturningInsert[tuple[int]]:
    """Built once (building one costs more than running it); the values come as parameters."""
    insert = sqlite_insert if dialect == "sqlite" else postgresql_insert
    table = cast(Table, model.__table__)
    return insert(table).on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id)


def _error(session: Session, fact: ErrorFact) -> None:
    fields = fact.model_dump(exclude={"normalized"})
    if not _insert_once(session, ErrorEvent, fields):
        return
    pattern = session.get(ErrorPattern, fact.signature)
    if pattern is None:
        session.add(
            ErrorPattern(
                signature=fact.signature,
                category=fact.category,
                normalized=fact.normalized,
                occurrences=1,
                resolutions=0,
                success_rate=0.0,
                first_seen=fact.at,
                last_seen=fact.at,
                last_run_id=fact.run_id,
                last_workstream_id=fact.workstream_id,
                resolved_by="",
            )
        )
        return
    pattern.occurrences += 1
    pattern.last_seen = max(_aware(pattern.last_seen), fact.at)
    pattern.last_run_id, pattern.last_workstream_id = fact.run_id, fact.workstream_id
    pattern.success_rate = pattern.resolutions / pattern.occurrences


def _resolve(session: Session, fact: ResolutionFact) -> None:
    """Errors of the same step in earlier attempts of this workstream are now resolved; each
    counts as a resolution of its signature once (the update only takes unresolved ones), is
    kept with what fixed it, and teaches the learner."""
    through = fact.through_attempt if fact.through_attempt is not None else fact.attempt - 1
    open_errors = session.scalars(
        select(ErrorEvent).where(
            ErrorEvent.run_id == fact.run_id,
            ErrorEvent.workstream_id == fact.workstream_id,
            ErrorEvent.source == fact.source,
            ErrorEvent.attempt <= through,
            ErrorEvent.resolved_at.is_(None),
        )
    ).all()
    for event in open_errors:
        done = session.execute(
            update(ErrorEvent)
            .where(ErrorEvent.id == event.id, ErrorEvent.resolved_at.is_(None))
            .values(resolved_at=fact.at)
        )
        if not getattr(done, "rowcount", 0):
            continue
        pattern = session.get(ErrorPattern, event.signature)
        if pattern is not None:
            pattern.resolutions += 1
            pattern.success_rate = pattern.resolutions / max(pattern.occurrences, 1)
            if fact.resolved_by:
                pattern.resolved_by = fact.resolved_by[:2000]
        session.add(
            Resolution(
                key=f"resolution/{event.key}",
                signature=event.signature,
                category=event.category,
                run_id=fact.run_id,
                workstream_id=fact.workstream_id,
                attempt=fact.attempt,
                source=fact.source,
                tool_id=fact.tool_id,
                feedback=fact.feedback[:4000],
                adjust=fact.adjust[:2000],
                files=fact.files[:50],
                hunks=fact.hunks,
                excerpt=fact.excerpt[:4000],
                gates_ran=fact.gates_ran,
                gates_total=fact.gates_total,
                reproduced_by=fact.reproduced_by,
                pattern_id=fact.pattern_id,
                at=fact.at,
            )
        )
        session.flush()
        patterns.learn(session, event.signature, event.category, fact.learning)


def _run(session: Session, fact: RunFact) -> None:
    row = session.get(Run, fact.run_id)
    if row is None:
        session.add(Run(**fact.model_dump()))
        return
    for name, value in fact.model_dump(exclude={"run_id"}).items():
        if value is not None:
            setattr(row, name, value)


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their zone (they are stored in UTC)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
