"""What every artifact store is: blobs named by their sha256, referred to by ``ArtifactRef``s,
every read checked against the name. And what the backends share: hashing, and the errors a
caller can tell apart (by ``ApplicationError.type``):

- ``ArtifactMissing`` (non-retryable): no blob of that name in this store;
- ``ArtifactCorrupt`` (non-retryable): the bytes there do not hash to the name;
- ``DiskFull`` (non-retryable): a local write found no space;
- ``ArtifactStoreUnavailable`` (retryable): the store could not be reached; it may come back;
- ``ArtifactStoreConfig`` (non-retryable): the configured store is not a usable one.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path

from temporalio.exceptions import ApplicationError

from schemas.base import ArtifactRef

#: How much of a blob is in memory at once while it is hashed, written or read.
CHUNK = 1 << 20


class ArtifactStore(ABC):
    """A content-addressed blob store. Writes are idempotent: the same bytes always get the same
    name, so a retried activity that stores its output again changes nothing."""

    #: Where the blobs are, for messages: a folder, or a database URL without credentials.
    location: str

    @abstractmethod
    def ref(self, sha256: str, size: int, media_type: str) -> ArtifactRef:
        """The reference to a stored blob (its ``uri`` never holds a credential)."""

    @abstractmethod
    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> ArtifactRef:
        """Store ``data``; storing it again only marks it used again."""

    @abstractmethod
    def put_file(self, source: Path, media_type: str = "application/octet-stream") -> ArtifactRef:
        """Store a file's bytes, streamed (logs can be large): never all in memory."""

    @abstractmethod
    def iter_chunks(self, ref: ArtifactRef) -> Iterator[bytes]:
        """The blob's bytes in pieces of at most a chunk. The hash is checked as they go by:
        after the last piece the iterator raises ``ArtifactCorrupt`` instead of ending if they
        did not match, so a consumer keeps nothing it read until the iterator has ended."""

    @abstractmethod
    def verified_path(self, ref: ArtifactRef) -> Path:
        """A local file holding the blob, checked intact (for tools that read files, such as
        ``git apply``). Read it, do not change it."""

    def read_bytes(self, ref: ArtifactRef) -> bytes:
        """The whole blob, checked against its name."""
        return b"".join(self.iter_chunks(ref))

    def check(self) -> None:
        """Raise ``ArtifactStoreUnavailable`` if the store cannot be reached now (a folder
        always can: its errors come with each write)."""
        return None


class Digest:
    """A running sha256 and byte count."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def file_digest(path: Path, chunk_size: int = CHUNK) -> tuple[str, int]:
    """(sha256, size) of a file, read a chunk at a time."""
    digest = Digest()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest(), digest.size


def pieces(data: bytes, chunk_size: int) -> Iterator[bytes]:
    """``data`` in slices of ``chunk_size`` (none for empty data)."""
    view = memoryview(data)
    for start in range(0, len(data), chunk_size):
        yield bytes(view[start : start + chunk_size])


def verifying(chunks: Iterable[bytes], ref: ArtifactRef, where: str) -> Iterator[bytes]:
    """``chunks`` as they come, then ``ArtifactCorrupt`` at the end if they do not hash to
    ``ref``'s name (see ``ArtifactStore.iter_chunks``)."""
    digest = Digest()
    for chunk in chunks:
        digest.update(chunk)
        yield chunk
    if digest.hexdigest() != ref.sha256:
        raise corrupt(ref, where)


def missing(ref: ArtifactRef, where: str, hint: str) -> ApplicationError:
    return ApplicationError(
        f"artifact {ref.sha256[:12]} is missing from {where}; {hint}",
        type="ArtifactMissing",
        non_retryable=True,
    )


def corrupt(ref: ArtifactRef, where: str) -> ApplicationError:
    return ApplicationError(
        f"artifact {ref.sha256[:12]} at {where} is corrupt (hash mismatch)",
        type="ArtifactCorrupt",
        non_retryable=True,
    )
