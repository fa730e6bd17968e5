"""Learning, part 2: resolutions, recovery patterns with versions and uses, workstream shapes.

The two placeholder tables of 0001 (pattern_metrics, pattern_candidates) were never written;
recovery_patterns, pattern_versions and pattern_uses replace them.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.drop_table("pattern_metrics")
    op.drop_table("pattern_candidates")
    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("signature", sa.String(64), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("workstream_id", sa.String(100), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("source", sa.String(140), nullable=False),
        sa.Column("tool_id", sa.String(64), nullable=True),
        sa.Column("feedback", sa.Text, nullable=False),
        sa.Column("adjust", sa.Text, nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("hunks", sa.Integer, nullable=False),
        sa.Column("excerpt", sa.Text, nullable=False),
        sa.Column("gates_ran", sa.Integer, nullable=False),
        sa.Column("gates_total", sa.Integer, nullable=False),
        sa.Column("reproduced_by", sa.Text, nullable=True),
        sa.Column("pattern_id", sa.String(40), nullable=True),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_index("ix_resolutions_signature", "resolutions", ["signature"])
    op.create_table(
        "recovery_patterns",
        sa.Column("pattern_id", sa.String(40), primary_key=True),
        sa.Column("signature", sa.String(64), nullable=False, unique=True),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("uses", sa.Integer, nullable=False),
        sa.Column("successes", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "pattern_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("pattern_id", sa.String(40), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("guidance", sa.Text, nullable=False),
        sa.Column("recovery_command", sa.Text, nullable=True),
        sa.Column("recovery_timeout_s", sa.Float, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.UniqueConstraint("pattern_id", "version", name="uq_pattern_versions"),
    )
    op.create_index("ix_pattern_versions_pattern_id", "pattern_versions", ["pattern_id"])
    op.create_table(
        "pattern_uses",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("pattern_id", sa.String(40), nullable=False),
        sa.Column("version", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("workstream_id", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_index("ix_pattern_uses_pattern_id", "pattern_uses", ["pattern_id"])
    op.create_table(
        "workstream_specs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False, unique=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("phase_id", sa.String(100), nullable=False),
        sa.Column("workstream_id", sa.String(100), nullable=False),
        sa.Column("template", sa.String(100), nullable=True),
        sa.Column("tool_id", sa.String(32), nullable=False),
        sa.Column("task_kind", sa.String(50), nullable=True),
        sa.Column("gate_set", sa.String(64), nullable=False),
        sa.Column("scope_shape", sa.String(400), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("estimated_duration_s", sa.Float, nullable=True),
        sa.Column("at", WHEN, nullable=False),
    )
    op.create_index("ix_workstream_specs_run_id", "workstream_specs", ["run_id"])
    op.create_index("ix_workstream_specs_at", "workstream_specs", ["at"])


def downgrade() -> None:
    for table in (
        "workstream_specs",
        "pattern_uses",
        "pattern_versions",
        "recovery_patterns",
        "resolutions",
    ):
        op.drop_table(table)
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
