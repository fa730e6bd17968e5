"""Content-addressed artifact store: blobs by sha256 under ``<UET_HOME>/artifacts``.

Writes are atomic (temp file + rename) and idempotent: the same bytes always land at the same
path, so a retried activity that stores its output again changes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
from pathlib import Path

from temporalio.exceptions import ApplicationError

from schemas.base import ArtifactRef

_CHUNK = 1 << 20
#: A full disk, or a full quota: nothing a retry on this worker can fix.
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

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
            self._write_atomically(target, [data])
        else:
            _touch(target)
        return self.ref(digest, len(data), media_type)

    def put_file(self, source: Path, media_type: str = "application/octet-stream") -> ArtifactRef:
        """Store a file's bytes (streamed: logs can be large)."""
        digest = hashlib.sha256()
        size = 0
        with source.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        hexdigest = digest.hexdigest()
        target = self.path_for(hexdigest)
        if not target.exists():
            with source.open("rb") as fh:
                self._write_atomically(target, iter(lambda: fh.read(_CHUNK), b""))
        else:
            _touch(target)
        return self.ref(hexdigest, size, media_type)

    def verified_path(self, ref: ArtifactRef) -> Path:
        """The blob's path, after checking it is there and intact (for tools that read files)."""
        self.read_bytes(ref)
        return self.path_for(ref.sha256)

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        path = self.path_for(ref.sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ApplicationError(
                f"artifact {ref.sha256[:12]} is missing from {self.root}; is the artifact store "
                "shared with every worker (UET_HOME)?",
                type="ArtifactMissing",
                non_retryable=True,
            ) from None
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ApplicationError(
                f"artifact {ref.sha256[:12]} at {path} is corrupt (hash mismatch)",
                type="ArtifactCorrupt",
                non_retryable=True,
            )
        return data

    def _write_atomically(self, target: Path, chunks: object) -> None:
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

    @staticmethod
    def _write(target: Path, chunks: object) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:  # type: ignore[attr-defined]
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _touch(path: Path) -> None:
    """A blob stored again is in use again: `uet gc` goes by its mtime."""
    # A read-only store: its age only matters to gc, which could not remove it either.
    with contextlib.suppress(OSError):
        os.utime(path)
