"""The tables (the plans' names, adapted to uet). Migrations in migrations/versions create them;
these declarations are what the code reads and writes through."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, Index, Integer, String, Text
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


class PatternMetric(Base):
    """How a learned pattern does when applied (part 2)."""

    __tablename__ = "pattern_metrics"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signature: Mapped[str] = mapped_column(String(64), index=True)
    applied: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column()


class PatternCandidate(Base):
    """A recovery pattern proposed from resolutions, with its confidence and why (part 2)."""

    __tablename__ = "pattern_candidates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signature: Mapped[str] = mapped_column(String(64), index=True)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="proposed")
    created_at: Mapped[datetime] = mapped_column()


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
