"""Which artifact store this process uses, from its environment.

1. ``UET_ARTIFACTS_URL``: a path or ``file://`` URL (a folder: the local store there), or a
   ``postgresql[+driver]://`` SQLAlchemy URL (the PostgreSQL store);
2. else, when ``UET_DATABASE_URL`` (the telemetry database) is PostgreSQL, that database;
3. else the folder ``$UET_HOME/artifacts``.

Every worker and command of a deployment must resolve to the same store. A URL that is not
usable is an ``ArtifactStoreConfig`` error (non-retryable, one line, no password in it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import make_url
from temporalio.exceptions import ApplicationError

from activities.lib.artifacts.base import ArtifactStore
from activities.lib.artifacts.local import LocalArtifactStore
from schemas.base import ArtifactRef

ARTIFACTS_URL = "UET_ARTIFACTS_URL"
DATABASE_URL = "UET_DATABASE_URL"
#: ``postgresql://`` alone means SQLAlchemy's default driver (psycopg2, not a dependency).
_DEFAULT_DRIVER = "postgresql+psycopg"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
#: ``user:password@`` in a URL that would not parse (so it cannot be redacted the usual way),
#: and libpq's ``?password=`` in any.
_USERINFO = re.compile(r"(://[^/@:]*):[^/@]*@")
_PASSWORD_PARAM = re.compile(r"(?i)(password=)[^&]*")


def open_artifact_store(home: Path) -> ArtifactStore:
    """The store the environment names (see the module's doc); ``home``: UET_HOME (the local
    store's parent, and the PostgreSQL store's read-through cache)."""
    given = os.environ.get(ARTIFACTS_URL, "").strip()
    if given:
        return _from_url(given, home, ARTIFACTS_URL)
    database = os.environ.get(DATABASE_URL, "").strip()
    if database and _is_postgres(database):
        return _postgres(database, home, DATABASE_URL)
    return LocalArtifactStore(home / "artifacts")


def _from_url(value: str, home: Path, variable: str) -> ArtifactStore:
    scheme = _SCHEME.match(value)
    if scheme is None:
        return LocalArtifactStore(Path(value).expanduser().absolute())
    name = scheme.group(1).lower()
    if name == "file":
        parts = urlsplit(value)
        path = Path(unquote(parts.path))
        if parts.netloc not in ("", "localhost") or not path.is_absolute():
            _unusable(variable, value, "a file:// URL names a folder of this host: file:///path")
        return LocalArtifactStore(path)
    if name == "postgresql" or name.startswith("postgresql+"):
        return _postgres(value, home, variable)
    _unusable(
        variable,
        value,
        "not a path, a file:// URL or a postgresql+psycopg://user:password@host:port/db URL",
    )


def _postgres(value: str, home: Path, variable: str) -> ArtifactStore:
    from activities.lib.artifacts.postgres import PostgresArtifactStore

    try:
        url = make_url(value)
        if url.drivername == "postgresql":
            url = url.set(drivername=_DEFAULT_DRIVER)
        if not url.database:
            _unusable(variable, value, "it names no database")
        # Loads the driver now (no connection yet): a missing one is said here, once.
        return PostgresArtifactStore(url, home / "artifacts")
    except ApplicationError:
        raise
    except Exception as exc:  # a port that is not a number, an unknown driver, …
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        # Some messages quote the whole URL, password and all.
        detail = _PASSWORD_PARAM.sub(r"\1***", _USERINFO.sub(r"\1:***@", detail))
        _unusable(variable, value, detail)


def _is_postgres(value: str) -> bool:
    scheme = _SCHEME.match(value)
    return scheme is not None and scheme.group(1).lower().split("+")[0] == "postgresql"


def _unusable(variable: str, value: str, why: str) -> NoReturn:
    raise ApplicationError(
        f"{variable}={_masked(value)} is not a usable artifact store ({why})",
        type="ArtifactStoreConfig",
        non_retryable=True,
    )


def _masked(value: str) -> str:
    try:
        shown = make_url(value).render_as_string(hide_password=True)
    except Exception:
        shown = _USERINFO.sub(r"\1:***@", value)
    return _PASSWORD_PARAM.sub(r"\1***", shown)


class UnusableArtifactStore(ArtifactStore):
    """What a worker whose configured store is not usable has instead: each use fails its
    activity with the configuration error (non-retryable, one line)."""

    def __init__(self, error: ApplicationError) -> None:
        self.error = error
        self.location = "(no usable artifact store)"

    def _fail(self) -> NoReturn:
        raise ApplicationError(self.error.message, type=self.error.type, non_retryable=True)

    def ref(self, sha256: str, size: int, media_type: str) -> ArtifactRef:
        self._fail()

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> ArtifactRef:
        self._fail()

    def put_file(self, source: Path, media_type: str = "application/octet-stream") -> ArtifactRef:
        self._fail()

    def iter_chunks(self, ref: ArtifactRef) -> Iterator[bytes]:
        self._fail()

    def verified_path(self, ref: ArtifactRef) -> Path:
        self._fail()

    def check(self) -> None:
        self._fail()
