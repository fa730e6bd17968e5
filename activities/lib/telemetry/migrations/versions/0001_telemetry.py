"""Telemetry: runs, executions, error events and patterns, and the tables part 2 fills.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("phase_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("scheduling", sa.String(16), nullable=False),
        sa.Column("workstreams", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Float, nullable=False),
        sa.Column("started_at", WHEN, nullable=True),
        sa.Column("ended_at", WHEN, nullable=True),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("workstream_id", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("tool_id", sa.String(32), nullable=True),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("task_kind", sa.String(50), nullable=True),
        sa.Column("gate_id", sa.String(100), nullable=True),
        sa.Column("scope_signature", sa.String(64), nullable=True),
        sa.Column("file_types", sa.String(200), nullable=False),
        sa.Column("tree_sha", sa.String(64), nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("duration_s", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("reason_code", sa.String(64), nullable=True),
        sa.Column("signature", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.Integer, nullable=True),
        sa.Column("output_tokens", sa.Integer, nullable=True),
        sa.Column("cost_usd", sa.Float, nullable=True),
    )
    op.create_index("ix_executions_run_id", "executions", ["run_id"])
    op.create_index("ix_executions_tool_id", "executions", ["tool_id"])
    op.create_index("ix_executions_at", "executions", ["at"])
    op.create_index("ix_executions_signature", "executions", ["signature"])
    op.create_index("ix_executions_tool_at", "executions", ["tool_id", "at"])
    op.create_table(
        "error_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("workstream_id", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("source", sa.String(140), nullable=False),
        sa.Column("excerpt", sa.Text, nullable=False),
        sa.Column("log_sha256", sa.String(64), nullable=True),
        sa.Column("log_uri", sa.Text, nullable=True),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
    )
    op.create_index("ix_error_events_signature", "error_events", ["signature"])
    op.create_index("ix_error_events_run_id", "error_events", ["run_id"])
    op.create_index("ix_error_events_at", "error_events", ["at"])
    op.create_index("ix_error_events_signature_at", "error_events", ["signature", "at"])
    op.create_table(
        "error_patterns",
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("normalized", sa.Text, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("resolutions", sa.Integer, nullable=False),
        sa.Column("success_rate", sa.Float, nullable=False),
        sa.Column("first_seen", WHEN, nullable=False),
        sa.Column("last_seen", WHEN, nullable=False),
        sa.Column("last_run_id", sa.String(32), nullable=False),
        sa.Column("last_workstream_id", sa.String(100), nullable=False),
        sa.Column("resolved_by", sa.Text, nullable=False),
    )
    op.create_index("ix_error_patterns_last_seen", "error_patterns", ["last_seen"])
    op.create_table(
        "pattern_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("applied", sa.Integer, nullable=False),
        sa.Column("succeeded", sa.Integer, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_pattern_metrics_signature", "pattern_metrics", ["signature"])
    op.create_table(
        "pattern_candidates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
    )
    op.create_index("ix_pattern_candidates_signature", "pattern_candidates", ["signature"])
    op.create_table(
        "anti_patterns",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("detected_at", WHEN, nullable=False),
    )
    op.create_index("ix_anti_patterns_detected_at", "anti_patterns", ["detected_at"])


def downgrade() -> None:
    for table in (
        "anti_patterns",
        "pattern_candidates",
        "pattern_metrics",
        "error_patterns",
        "error_events",
        "executions",
        "runs",
    ):
        op.drop_table(table)
