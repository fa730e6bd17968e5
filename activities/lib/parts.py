"""Documents too large for one payload travel as parts: text slices of at most ~48 KB, each an
artifact. The starter writes a large phase this way, the phase its state across
continue-as-new and its journal; no payload in any history grows with the size of a run.

A large phase is written as JSON lines (``document_lines``): a ``RunDocument`` holding the
phase with its first workstream, then one ``WorkstreamLine`` per workstream. The phase
workflow validates it a few parts at a time as they arrive (``DocumentReader``): a phase of
10,000 workstreams takes seconds to validate, longer than the SDK lets one workflow task run.
Each line is in its compact form, the fields at their defaults left out, which is a quarter of
the size, and the document is read again by every continued execution of the run.
"""

from __future__ import annotations

from activities.lib.artifacts import ArtifactStore
from schemas.base import ArtifactRef, Model
from schemas.run import RunDocument, RunInput, RunRecord, WorkstreamLine
from schemas.spec import EXPANDED

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
    document = RunDocument(phase=input.phase, patch_files=input.patch_files)
    if len(document.model_dump_json()) <= INLINE_LIMIT:
        return input
    text = "".join(line + "\n" for line in document_lines(document))
    return input.model_copy(
        update={"phase": None, "patch_files": {}, "document": store_document(store, text)}
    )


def document_lines(document: RunDocument) -> list[str]:
    """The document as JSON lines, each compact where that reads back as the same model."""
    phase, patch_files = document.phase, document.patch_files
    first, *rest = phase.workstreams
    head = RunDocument(
        phase=phase.model_copy(update={"workstreams": [first]}),
        patch_files={k: v for k, v in patch_files.items() if k == first.workstream_id},
    )
    return [
        compact(head),
        *(
            compact(WorkstreamLine(workstream=ws, patch_file=patch_files.get(ws.workstream_id)))
            for ws in rest
        ),
    ]


def compact(model: Model) -> str:
    """``model`` without the fields at their defaults, unless a validator would read that back
    as something else (it is read with EXPANDED: the phase's defaults are not merged again)."""
    text = model.model_dump_json(exclude_defaults=True)
    if type(model).model_validate_json(text, context=EXPANDED) == model:
        return text
    return model.model_dump_json()


class DocumentReader:
    """A large phase's document taken a part at a time: the whole lines of each validated as it
    arrives. A document written before phases came in lines is one JSON text, read at the end.
    """

    def __init__(self) -> None:
        self._head: RunDocument | None = None
        self._lines: list[WorkstreamLine] = []
        self._rest = ""  # the unfinished last line (or the whole of a one-text document)

    def add(self, text: str) -> None:
        *lines, self._rest = (self._rest + text).split("\n")
        for line in lines:
            if self._head is None:
                self._head = RunDocument.model_validate_json(line, context=EXPANDED)
            else:
                self._lines.append(WorkstreamLine.model_validate_json(line))

    def document(self) -> RunDocument:
        head = self._head
        if head is None:
            return RunDocument.model_validate_json(self._rest)
        if self._rest:
            raise ValueError("the phase's document ends inside a line: a part is missing")
        workstreams = [*head.phase.workstreams, *(line.workstream for line in self._lines)]
        patch_files = dict(head.patch_files)
        for line in self._lines:
            if line.patch_file is not None:
                patch_files[line.workstream.workstream_id] = line.patch_file
        return RunDocument.model_construct(
            phase=head.phase.model_copy(update={"workstreams": workstreams}),
            patch_files=patch_files,
        )


def read_run_document(store: ArtifactStore, parts: list[ArtifactRef]) -> RunDocument:
    reader = DocumentReader()
    for ref in parts:
        reader.add(store.read_bytes(ref).decode())
    return reader.document()


def whole_record(record: RunRecord, store: ArtifactStore) -> RunRecord:
    """``record`` with what its payload left out read back; its own scalars are the newer
    (the report folder, say, is known only after the parts were written)."""
    if not record.parts:
        return record
    return merged_record(record, read_document(store, record.parts))


def merged_record(record: RunRecord, text: str) -> RunRecord:
    """The record its parts' ``text`` holds, with ``record``'s own scalars (the newer)."""
    whole = RunRecord.model_validate_json(text)
    scalars = {name: value for name, value in record if not isinstance(value, list | dict)}
    return whole.model_copy(update=scalars)


def record_by_reference(record: RunRecord, store: ArtifactStore) -> RunRecord:
    """``record`` as a payload may carry it: by reference when it is too large."""
    text = record.model_dump_json()
    if len(text) <= INLINE_LIMIT:
        return record
    return record.by_reference(store_document(store, text))
