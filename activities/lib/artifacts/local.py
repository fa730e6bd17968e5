"""The artifact store in a folder: blobs by sha256 under ``root/sha256/xx/rest``.

Writes are atomic (temp file + rename), so a reader never sees half a blob. Also the layout of
the PostgreSQL store's read-through cache (postgres.py), which writes through this class.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.artifacts.base import CHUNK, ArtifactStore, corrupt, missing, verifying
from schemas.base import ArtifactRef

#: A full disk, or a full quota: nothing a retry on this worker can fix.
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)

    def path_for(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256[2:]

    def ref(self, sha256: str, size: int, media_type: str) -> ArtifactRef:
        return ArtifactRef(
            sha256=sha256, size=size, uri=self.path_for(sha256).as_uri(), media_type=media_type
        )

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> ArtifactRef:
        digest = hashlib.sha256(data).hexdigest()
        target = self.path_for(digest)
        if not target.exists():
            self.write_atomically(target, [data])
        else:
            touch(target)
        return self.ref(digest, len(data), media_type)

    def put_file(self, source: Path, media_type: str = "application/octet-stream") -> ArtifactRef:
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        hexdigest = digest.hexdigest()
        target = self.path_for(hexdigest)
        if not target.exists():
            with source.open("rb") as fh:
                self.write_atomically(target, iter(lambda: fh.read(CHUNK), b""))
        else:
            touch(target)
        return self.ref(hexdigest, size, media_type)

    def verified_path(self, ref: ArtifactRef) -> Path:
        self.read_bytes(ref)
        return self.path_for(ref.sha256)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        path = self.path_for(ref.sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._missing(ref) from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise corrupt(ref, str(path))
        return data

    def iter_chunks(self, ref: ArtifactRef) -> Iterator[bytes]:
        path = self.path_for(ref.sha256)
        try:
            fh = path.open("rb")
        except FileNotFoundError:
            raise self._missing(ref) from None
        with fh:
            yield from verifying(iter(lambda: fh.read(CHUNK), b""), ref, str(path))

    def write_atomically(self, target: Path, chunks: Iterable[bytes]) -> None:
        """``chunks`` into ``target`` by temp file and rename; whatever ``chunks`` raises (a
        hash mismatch at its end, say) leaves nothing behind."""
        try:
            self._write(target, chunks)
        except OSError as exc:
            if exc.errno in _DISK_FULL:
                raise ApplicationError(
                    f"no space left to write an artifact to {self.root} "
                    f"({exc.strerror or 'disk full'}); free space on that disk or set UET_HOME "
                    "to a larger one, then run again",
                    type="DiskFull",
                    non_retryable=True,
                ) from None
            raise

    def _missing(self, ref: ArtifactRef) -> ApplicationError:
        return missing(
            ref,
            str(self.root),
            "is the artifact store shared with every worker (UET_HOME, or UET_ARTIFACTS_URL "
            "for one that is not a disk)?",
        )

    @staticmethod
    def _write(target: Path, chunks: Iterable[bytes]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def touch(path: Path) -> None:
    """A blob stored (or read through a cache) again is in use again: `uet gc` goes by its
    mtime."""
    # A read-only store: its age only matters to gc, which could not remove it either.
    with contextlib.suppress(OSError):
        os.utime(path)
