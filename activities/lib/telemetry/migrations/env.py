"""Alembic's environment for uet's telemetry database (run through store.migrate, or
`uet db upgrade|downgrade|current`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from activities.lib.telemetry.models import Base


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite alters tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


given = context.config.attributes.get("connection")
if given is not None:
    _run(given)
else:
    url = str(context.config.get_main_option("sqlalchemy.url"))
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)
