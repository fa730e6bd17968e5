"""The artifact store in PostgreSQL: workers and commands that share no disk share the blobs.

A blob is a header row (``artifacts``) and its bytes in chunks (``artifact_chunks``, 1 MiB by
default), tables of the telemetry migrations (0003), brought to the newest schema on first use.

- **Never half-visible.** Chunks and header go in one transaction, the header last; readers
  look for the header first and read in one snapshot, so they see a whole blob or none. A
  writer killed mid-stream leaves nothing: its transaction dies with its connection.
- **Writers of the same blob at once.** Each takes a transaction-level advisory lock on the
  name, then looks for the header: the second finds the first's and only marks it used
  (inserts are ON CONFLICT DO NOTHING besides). ``uet gc`` deletes under the same lock, and only
  while ``used_at`` is still old, so a blob stored again at that moment is never lost.
- **Streaming.** ``put_file`` reads one chunk at a time (hashing first, so a blob already there
  is never sent again), ``iter_chunks`` fetches a couple of rows at a time.
- **Local files.** ``verified_path`` copies the blob into a read-through cache laid out as the
  local store (``home/artifacts``), atomically and hash-checked; ``uet gc`` collects it as ever.
- **Credentials.** ``ref().uri`` and every message name the store as
  ``postgresql://host:port/db`` — no user, no password, no query.
- **Errors.** A blob not there is ``ArtifactMissing`` (non-retryable); a database that cannot
  be reached is ``ArtifactStoreUnavailable``, retryable: it may come back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from temporalio.exceptions import ApplicationError

from activities.lib.artifacts.base import (
    CHUNK,
    ArtifactStore,
    Digest,
    file_digest,
    missing,
    pieces,
    verifying,
)
from activities.lib.artifacts.local import LocalArtifactStore, touch
from activities.lib.telemetry.models import artifact_chunks, artifacts
from activities.lib.telemetry.store import migrate
from schemas.base import ArtifactRef

#: The advisory-lock key space of artifact names ("uet" 2); the key is the name's first 4 bytes.
_LOCK_SPACE = 0x75657402
#: How long to wait for a connection before calling the store unreachable (a retry follows).
_CONNECT_TIMEOUT_S = 10

_engines: dict[str, Engine] = {}
_migrated: set[str] = set()
_guard = threading.Lock()


def engine_for(url: URL) -> Engine:
    """One engine per process per URL (a pool of connections, each checked before use)."""
    key = url.render_as_string(hide_password=False)
    with _guard:
        engine = _engines.get(key)
        if engine is None:
            connect_args = (
                {} if "connect_timeout" in url.query else {"connect_timeout": _CONNECT_TIMEOUT_S}
            )
            engine = create_engine(url, pool_pre_ping=True, connect_args=connect_args)
            _engines[key] = engine
        return engine


def _forget_engines() -> None:
    """In a forked child: the parent's pooled connections are the parent's, never to be used."""
    for engine in _engines.values():
        engine.dispose(close=False)
    _engines.clear()
    _migrated.clear()


os.register_at_fork(after_in_child=_forget_engines)


def public_url(url: URL) -> str:
    """``postgresql://host:port/db``: what a reference or a message may say of the store."""
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{url.port}" if url.port else ""
    return f"postgresql://{host}{port}/{url.database or ''}"


class PostgresArtifactStore(ArtifactStore):
    def __init__(self, url: URL, cache: Path, chunk_size: int = CHUNK) -> None:
        """``url``: a SQLAlchemy URL with a driver (``postgresql+psycopg``); ``cache``: the
        read-through cache's folder (``home/artifacts``)."""
        self.url = url
        self.location = public_url(url)
        self.cache = LocalArtifactStore(cache)
        self.chunk_size = chunk_size
        self._engine = engine_for(url)  # no connection yet: that waits for the first use

    def ref(self, sha256: str, size: int, media_type: str) -> ArtifactRef:
        return ArtifactRef(
            sha256=sha256, size=size, uri=f"{self.location}#sha256:{sha256}", media_type=media_type
        )

    # -- writing --------------------------------------------------------------------------------

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> ArtifactRef:
        digest = Digest()
        digest.update(data)
        sha256 = digest.hexdigest()
        self._put(sha256, media_type, lambda: pieces(data, self.chunk_size), "the bytes")
        return self.ref(sha256, len(data), media_type)

    def put_file(self, source: Path, media_type: str = "application/octet-stream") -> ArtifactRef:
        sha256, size = file_digest(source, self.chunk_size)

        def chunks() -> Iterator[bytes]:
            with source.open("rb") as fh:
                yield from iter(lambda: fh.read(self.chunk_size), b"")

        self._put(sha256, media_type, chunks, str(source))
        return self.ref(sha256, size, media_type)

    def _put(
        self, sha256: str, media_type: str, chunks: Callable[[], Iterable[bytes]], what: str
    ) -> None:
        with self._database(), self._connect() as connection:
            _lock(connection, sha256)
            if self._mark_used(connection, sha256):
                return  # stored before (or by a writer we waited for): nothing is sent again
            digest = Digest()
            for seq, chunk in enumerate(chunks()):
                digest.update(chunk)
                self._insert_chunk(connection, sha256, seq, chunk)
            if digest.hexdigest() != sha256:
                # Rolled back with the transaction: nothing of it is ever seen.
                raise ApplicationError(
                    f"{what} changed while being stored in {self.location}",
                    type="ArtifactChanged",
                )
            connection.execute(
                insert(artifacts)
                .values(
                    sha256=sha256,
                    size=digest.size,
                    media_type=media_type[:200],
                    created_at=func.now(),
                    used_at=func.now(),
                )
                .on_conflict_do_nothing()
            )

    def _insert_chunk(self, connection: Connection, sha256: str, seq: int, chunk: bytes) -> None:
        connection.execute(
            insert(artifact_chunks)
            .values(sha256=sha256, seq=seq, data=chunk)
            .on_conflict_do_nothing()
        )

    @staticmethod
    def _mark_used(connection: Connection, sha256: str) -> bool:
        """Bump the blob's ``used_at`` (what gc goes by); whether it is there."""
        statement = update(artifacts).where(artifacts.c.sha256 == sha256).values(used_at=func.now())
        return connection.execute(statement).rowcount == 1

    # -- reading --------------------------------------------------------------------------------

    def iter_chunks(self, ref: ArtifactRef) -> Iterator[bytes]:
        with self._database():
            self._ensure_schema()
        with self._database(), self._engine.connect() as connection:
            # One snapshot for the header and every chunk: a gc deleting the blob meanwhile
            # cannot make it look corrupt.
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                found = connection.execute(
                    select(artifacts.c.size).where(artifacts.c.sha256 == ref.sha256)
                ).first()
                if found is None:
                    raise missing(
                        ref,
                        f"the artifact store {self.location}",
                        "was it collected by `uet gc`, or do the workers and this command use "
                        "different stores (UET_ARTIFACTS_URL, UET_DATABASE_URL)?",
                    )
                rows = connection.execution_options(stream_results=True, max_row_buffer=2).execute(
                    select(artifact_chunks.c.data)
                    .where(artifact_chunks.c.sha256 == ref.sha256)
                    .order_by(artifact_chunks.c.seq)
                )
                yield from verifying((bytes(row[0]) for row in rows), ref, self.location)

    def verified_path(self, ref: ArtifactRef) -> Path:
        target = self.cache.path_for(ref.sha256)
        if target.is_file():
            try:
                intact = file_digest(target)[0] == ref.sha256
            except OSError:
                intact = False
            if intact:
                touch(target)  # the cache's copy is in use: gc keeps it a while longer
                return target
            # A damaged copy: fetched again, renamed over it.
        self.cache.write_atomically(target, self.iter_chunks(ref))
        return target

    def check(self) -> None:
        with self._database(), self._connect() as connection:
            connection.execute(text("SELECT 1"))

    # -- for uet gc -----------------------------------------------------------------------------

    def listing(self) -> dict[str, tuple[int, float]]:
        """Every blob: name → (size, when last stored, a Unix time)."""
        with self._database(), self._connect() as connection:
            rows = connection.execute(
                select(artifacts.c.sha256, artifacts.c.size, artifacts.c.used_at)
            )
            return {sha: (size, used.timestamp()) for sha, size, used in rows}

    def delete_unused(self, sha256: str, before: float) -> str | None:
        """Delete the blob if it was last stored before ``before`` (a Unix time); None when it
        went, else why it stays."""
        cutoff = datetime.fromtimestamp(before, UTC)
        with self._database(), self._connect() as connection:
            _lock(connection, sha256)
            gone = connection.execute(
                delete(artifacts)
                .where(artifacts.c.sha256 == sha256, artifacts.c.used_at < cutoff)
                .returning(artifacts.c.sha256)
            ).first()
            if gone is None:
                there = connection.execute(
                    select(artifacts.c.sha256).where(artifacts.c.sha256 == sha256)
                ).first()
                return "stored again since the plan" if there else "already gone"
            connection.execute(delete(artifact_chunks).where(artifact_chunks.c.sha256 == sha256))
            return None

    # -- the database ---------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection in a transaction (committed at the end, rolled back on an error), on a
        database with the newest schema."""
        self._ensure_schema()
        with self._engine.begin() as connection:
            yield connection

    def _ensure_schema(self) -> None:
        key = self.url.render_as_string(hide_password=False)
        if key in _migrated:
            return
        with self._engine.begin() as connection:
            migrate(connection)
        _migrated.add(key)

    @contextmanager
    def _database(self) -> Iterator[None]:
        """Database errors as one line naming the store (never its credentials), retryable."""
        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig or exc).strip().splitlines()
            detail = reason[0] if reason else type(exc).__name__
            if isinstance(exc, OperationalError | InterfaceError):
                raise ApplicationError(
                    f"the artifact store {self.location} is unreachable ({detail})",
                    type="ArtifactStoreUnavailable",
                ) from None
            raise ApplicationError(
                f"the artifact store {self.location} failed ({detail})",
                type="ArtifactStoreError",
            ) from None


def _lock(connection: Connection, sha256: str) -> None:
    """Until the transaction ends, nobody else writes or deletes this blob."""
    key = int.from_bytes(bytes.fromhex(sha256[:8]), "big", signed=True)
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:space, :key)"), {"space": _LOCK_SPACE, "key": key}
    )
