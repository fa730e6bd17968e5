"""The artifact store in the database: blobs as headers and chunks (UET_ARTIFACTS_URL, or the
PostgreSQL telemetry database).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(200), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=False),
    )
    op.create_index("ix_artifacts_used_at", "artifacts", ["used_at"])
    op.create_table(
        "artifact_chunks",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("sha256", "seq", name="pk_artifact_chunks"),
    )


def downgrade() -> None:
    op.drop_table("artifact_chunks")
    op.drop_index("ix_artifacts_used_at", table_name="artifacts")
    op.drop_table("artifacts")
