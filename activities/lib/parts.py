"""Documents too large for one payload travel as parts: text slices of at most ~48 KB, each an
artifact. The starter writes a large phase this way, the phase its state across
continue-as-new and its journal; no payload in any history grows with the size of a run.
"""

from __future__ import annotations

from activities.lib.artifacts import ArtifactStore
from schemas.base import ArtifactRef
from schemas.run import RunDocument, RunInput

#: Largest part, in characters: far below the 512 KiB payload warning even for 4-byte UTF-8.
PART_CHARS = 48_000
#: Above this, a run's phase and patch files travel by reference (the design's ~64 KiB rule).
INLINE_LIMIT = 64 * 1024
MEDIA_TYPE = "text/plain; charset=utf-8"


def split(text: str) -> list[str]:
    return [text[i : i + PART_CHARS] for i in range(0, len(text), PART_CHARS)] or [""]


def pack_lines(lines: list[str]) -> list[str]:
    """JSON Lines in parts of whole lines (a reader takes each part line by line)."""
    parts: list[str] = []
    for line in lines:
        if parts and len(parts[-1]) + len(line) < PART_CHARS:
            parts[-1] += line + "\n"
        else:
            parts.append(line + "\n")
    return parts


def store_document(store: ArtifactStore, text: str) -> list[ArtifactRef]:
    return [store.put_bytes(part.encode(), MEDIA_TYPE) for part in split(text)]


def read_document(store: ArtifactStore, parts: list[ArtifactRef]) -> str:
    return "".join(store.read_bytes(ref).decode() for ref in parts)


def by_reference(input: RunInput, store: ArtifactStore) -> RunInput:
    """``input`` with its phase and patch files as parts when they are too large to carry."""
    if input.phase is None:
        return input
    text = RunDocument(phase=input.phase, patch_files=input.patch_files).model_dump_json()
    if len(text) <= INLINE_LIMIT:
        return input
    return input.model_copy(
        update={"phase": None, "patch_files": {}, "document": store_document(store, text)}
    )
