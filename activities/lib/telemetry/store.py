"""The telemetry database: where it is, its migrations, and its sessions.

Migrations run on first use (``Telemetry.open``); ``uet db upgrade|downgrade|current`` runs
them by hand. Every migration has a working downgrade, tested on SQLite and PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock held while the schema is checked and migrated ("uet" 1).
_MIGRATION_LOCK = 0x75657401


def database_url(home: Path) -> str:
    """``UET_DATABASE_URL``, else SQLite at ``$UET_HOME/uet.db``."""
    return os.environ.get("UET_DATABASE_URL") or f"sqlite:///{home / 'uet.db'}"


def learning_disabled() -> bool:
    """The kill switch: ``UET_DISABLE_LEARNING=1`` stops every write and read of learned data."""
    return os.environ.get("UET_DISABLE_LEARNING", "").strip().lower() in ("1", "true", "yes")


def redacted(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


class Telemetry:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str) -> Telemetry:
        """The database at ``url``, migrated to the newest schema."""
        telemetry = cls(url)
        with telemetry.engine.begin() as connection:
            migrate(connection)
        return telemetry

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    # -- migrations ----------------------------------------------------------------------------

    def _config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    def upgrade(self, revision: str = "head") -> None:
        with self.engine.begin() as connection:
            config = self._config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def downgrade(self, revision: str = "base") -> None:
        with self.engine.begin() as connection:
            config = self._config()
            config.attributes["connection"] = connection
            command.downgrade(config, revision)

    def current(self) -> str | None:
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def head(self) -> str | None:
        return ScriptDirectory.from_config(self._config()).get_current_head()

    def revisions(self) -> list[str]:
        """Every revision, oldest first."""
        script = ScriptDirectory.from_config(self._config())
        return [r.revision for r in reversed(list(script.walk_revisions()))]


def migrate(connection: Connection) -> None:
    """Bring the database behind ``connection`` (in a transaction) to the newest schema when it
    is not there yet. On PostgreSQL under an advisory lock: workers and commands that start at
    once (and the artifact store, which shares the migrations) migrate it once; the others wait
    for the lock and find it done."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    head = ScriptDirectory.from_config(config).get_current_head()
    if MigrationContext.configure(connection).get_current_revision() != head:
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Workers and the CLI write at once: wait for a lock rather than fail, and let readers
    # read while one writes.
    engine = create_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine
