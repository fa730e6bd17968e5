"""The tables (the plans' names, adapted to uet). Migrations in migrations/versions create them;
these declarations are what the code reads and writes through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


class Run(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    phase_id: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(32))
    scheduling: Mapped[str] = mapped_column(String(16), default="waves")
    workstreams: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[datetime | None] = mapped_column(nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Execution(Base):
    """One tool run or one gate run. ``key`` makes a record idempotent: a retried or replayed
    activity writes the same key and counts once."""

    __tablename__ = "executions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    workstream_id: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))  # tool | gate
    tool_id: Mapped[str | None] = mapped_column(String(32), index=True)
    model: Mapped[str | None] = mapped_column(String(100))
    task_kind: Mapped[str | None] = mapped_column(String(50))
    gate_id: Mapped[str | None] = mapped_column(String(100))
    scope_signature: Mapped[str | None] = mapped_column(String(64))
    file_types: Mapped[str] = mapped_column(String(200), default="")
    tree_sha: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(32))
    reason_code: Mapped[str | None] = mapped_column(String(64))
    signature: Mapped[str | None] = mapped_column(String(64), index=True)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Float)


class ErrorEvent(Base):
    __tablename__ = "error_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    signature: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    workstream_id: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(140))  # gate:<id> | tool:<id> | phase-gate:<id>
    excerpt: Mapped[str] = mapped_column(Text, default="")
    log_sha256: Mapped[str | None] = mapped_column(String(64))
    log_uri: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ErrorPattern(Base):
    """Per signature: how often it happened, how often a later attempt passed."""

    __tablename__ = "error_patterns"

    signature: Mapped[str] = mapped_column(String(64), primary_key=True)
    category: Mapped[str] = mapped_column(String(32))
    normalized: Mapped[str] = mapped_column(Text, default="")
    occurrences: Mapped[int] = mapped_column(Integer, default=0)
    resolutions: Mapped[int] = mapped_column(Integer, default=0)
    success_rate: Mapped[float] = mapped_column(Float, default=0.0)
    first_seen: Mapped[datetime] = mapped_column()
    last_seen: Mapped[datetime] = mapped_column(index=True)
    last_run_id: Mapped[str] = mapped_column(String(32))
    last_workstream_id: Mapped[str] = mapped_column(String(100))
    resolved_by: Mapped[str] = mapped_column(Text, default="")


class Resolution(Base):
    """An error that a later attempt fixed: what it was told, what the fix changed."""

    __tablename__ = "resolutions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    signature: Mapped[str] = mapped_column(String(64), index=True)
    category: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str] = mapped_column(String(32))
    workstream_id: Mapped[str] = mapped_column(String(100))
    attempt: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(140))
    tool_id: Mapped[str | None] = mapped_column(String(64))
    feedback: Mapped[str] = mapped_column(Text, default="")
    adjust: Mapped[str] = mapped_column(Text, default="")
    files: Mapped[list[str]] = mapped_column(JSON, default=list)
    hunks: Mapped[int] = mapped_column(Integer, default=0)
    excerpt: Mapped[str] = mapped_column(Text, default="")
    gates_ran: Mapped[int] = mapped_column(Integer, default=0)
    gates_total: Mapped[int] = mapped_column(Integer, default=0)
    reproduced_by: Mapped[str | None] = mapped_column(Text)
    pattern_id: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column()


class RecoveryPattern(Base):
    """What heals one error signature; its current version is in pattern_versions."""

    __tablename__ = "recovery_patterns"

    pattern_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    signature: Mapped[str] = mapped_column(String(64), unique=True)
    category: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # draft | active | quarantined | retired
    state_reason: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[str] = mapped_column(String(16))
    uses: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column()


class PatternVersion(Base):
    """One version of a pattern (v1.0, v1.1, …): kept for history and rollback."""

    __tablename__ = "pattern_versions"
    __table_args__ = (UniqueConstraint("pattern_id", "version", name="uq_pattern_versions"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pattern_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[str] = mapped_column(String(16))
    guidance: Mapped[str] = mapped_column(Text, default="")
    recovery_command: Mapped[str | None] = mapped_column(Text)
    recovery_timeout_s: Mapped[float] = mapped_column(Float, default=120.0)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    origin: Mapped[str] = mapped_column(String(16))  # learned | imported | rollback
    created_at: Mapped[datetime] = mapped_column()


class PatternUse(Base):
    """A pattern applied once (its recovery command, or its guidance in a fix attempt)."""

    __tablename__ = "pattern_uses"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    pattern_id: Mapped[str] = mapped_column(String(40), index=True)
    version: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # recovery | guidance
    run_id: Mapped[str] = mapped_column(String(32))
    workstream_id: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(16))  # passed | failed
    at: Mapped[datetime] = mapped_column()


class WorkstreamShape(Base):
    """A workstream as a run planned it: for the template detector, the suggester and
    learned durations."""

    __tablename__ = "workstream_specs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    run_id: Mapped[str] = mapped_column(String(32), index=True)
    phase_id: Mapped[str] = mapped_column(String(100))
    workstream_id: Mapped[str] = mapped_column(String(100))
    template: Mapped[str | None] = mapped_column(String(100))
    tool_id: Mapped[str] = mapped_column(String(32))
    task_kind: Mapped[str | None] = mapped_column(String(50))
    gate_set: Mapped[str] = mapped_column(String(64))
    scope_shape: Mapped[str] = mapped_column(String(400))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
    estimated_duration_s: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(index=True)


class AntiPattern(Base):
    """Something that keeps going wrong (the anti-pattern detector)."""

    __tablename__ = "anti_patterns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurrences: Mapped[int] = mapped_column(Integer, default=0)
    detected_at: Mapped[datetime] = mapped_column(index=True)


Index("ix_executions_tool_at", Execution.tool_id, Execution.at)
Index("ix_error_events_signature_at", ErrorEvent.signature, ErrorEvent.at)


# -- the artifact store's blobs (activities/lib/artifacts/postgres.py, through SQLAlchemy Core) --

#: One row per complete blob, written in the same transaction as its chunks and after them:
#: a reader that finds the row finds every chunk. ``used_at`` is what ``uet gc`` goes by.
artifacts = Table(
    "artifacts",
    Base.metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("media_type", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True), nullable=False, index=True),
)
#: A blob's bytes in order of ``seq`` (no foreign key: the chunks go in before their header).
artifact_chunks = Table(
    "artifact_chunks",
    Base.metadata,
    Column("sha256", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
    PrimaryKeyConstraint("sha256", "seq", name="pk_artifact_chunks"),
)
