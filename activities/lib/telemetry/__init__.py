"""What outlives a run: the telemetry database (SQLAlchemy 2, Alembic migrations).

SQLite at ``$UET_HOME/uet.db`` by default, PostgreSQL for teams (``UET_DATABASE_URL``).
Activities write to it; the CLI reads it; workflows never touch it.
"""
