"""The telemetry database: every migration goes up and down, on SQLite and on a real
PostgreSQL server, and the migrated schema is exactly what the code declares."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from activities.lib.telemetry.models import Base
from activities.lib.telemetry.store import Telemetry

ROOT = Path(__file__).resolve().parent.parent
TABLES = {
    "runs",
    "executions",
    "error_events",
    "error_patterns",
    "resolutions",
    "recovery_patterns",
    "pattern_versions",
    "pattern_uses",
    "workstream_specs",
    "anti_patterns",
    "artifacts",
    "artifact_chunks",
}


def tables(telemetry: Telemetry) -> set[str]:
    return set(inspect(telemetry.engine).get_table_names()) - {"alembic_version"}


def check_up_and_down(url: str) -> None:
    telemetry = Telemetry(url)
    try:
        assert telemetry.current() is None and tables(telemetry) == set()
        revisions = telemetry.revisions()
        assert revisions and revisions[-1] == telemetry.head()
        # Each migration up, then each down, then all the way up again.
        for revision in revisions:
            telemetry.upgrade(revision)
            assert telemetry.current() == revision
        assert tables(telemetry) == TABLES
        with telemetry.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert differences == [], differences
        for previous in [*reversed(revisions[:-1]), "base"]:
            telemetry.downgrade(previous if previous != "base" else "base")
            assert telemetry.current() == (None if previous == "base" else previous)
        assert tables(telemetry) == set()
        telemetry.upgrade()
        assert tables(telemetry) == TABLES
        with telemetry.session() as session:
            assert session.execute(text("select count(*) from executions")).scalar() == 0
    finally:
        telemetry.close()


def test_migrations_up_and_down_on_sqlite(tmp_path: Path) -> None:
    check_up_and_down(f"sqlite:///{tmp_path / 'uet.db'}")


def test_migrations_up_and_down_on_postgresql(postgres_url: str) -> None:
    check_up_and_down(postgres_url)


def test_the_compose_database_setup_works(postgres_url: str) -> None:
    """deploy/postgres-init.sql, run as the compose PostgreSQL runs it, gives uet a database
    its own user can migrate."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(postgres_url)
    admin = f"host={server.host} port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        # One statement at a time, as psql runs the file (CREATE DATABASE cannot be in a block).
        for statement in (ROOT / "deploy" / "postgres-init.sql").read_text().split(";"):
            if any(
                line.strip() and not line.strip().startswith("--")
                for line in statement.splitlines()
            ):
                connection.execute(statement)  # type: ignore[call-overload]
    telemetry = Telemetry.open(f"postgresql+psycopg://uet:uet@{server.host}:{server.port}/uet")
    try:
        assert tables(telemetry) == TABLES
        with telemetry.session() as session:
            owner = session.execute(text("select current_user")).scalar()
        assert owner == "uet"
    finally:
        telemetry.close()


def test_first_use_migrates(tmp_path: Path) -> None:
    telemetry = Telemetry.open(f"sqlite:///{tmp_path / 'deep' / 'uet.db'}")
    try:
        assert telemetry.current() == telemetry.head()
        assert tables(telemetry) == TABLES
    finally:
        telemetry.close()


def test_uet_db_commands(tmp_path: Path) -> None:
    env = {**os.environ, "UET_HOME": str(tmp_path / "home")}
    env.pop("UET_DATABASE_URL", None)

    def uet(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "starter", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert "not created yet" in uet("db", "current").stdout
    up = uet("db", "upgrade")
    assert up.returncode == 0, up.stderr
    head = Telemetry(f"sqlite:///{tmp_path / 'home' / 'uet.db'}").head()
    assert f"at revision {head} (the newest)" in uet("db", "current").stdout
    down = uet("db", "downgrade", "base")
    assert down.returncode == 0, down.stderr
    assert "not created yet" in uet("db", "current").stdout
    bad = uet("db", "downgrade", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("value", ["1", "true"])
def test_the_kill_switch_stops_the_db_commands(tmp_path: Path, value: str) -> None:
    env = {**os.environ, "UET_HOME": str(tmp_path), "UET_DISABLE_LEARNING": value}
    result = subprocess.run(
        [sys.executable, "-m", "starter", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "UET_DISABLE_LEARNING" in result.stderr
    assert not (tmp_path / "uet.db").exists()
