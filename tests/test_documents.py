"""A large phase's document (activities/lib/parts.py): compact JSON lines that read back as
exactly the phase that was written, a part at a time, cut anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import phase

from activities.lib.artifacts import LocalArtifactStore
from activities.lib.parts import (
    PART_CHARS,
    DocumentReader,
    by_reference,
    document_lines,
    read_run_document,
    split,
)
from schemas.base import ArtifactRef
from schemas.run import RunDocument, RunInput, RunOptions
from schemas.spec import PhaseSpec


def tricky_phase(n: int = 300) -> PhaseSpec:
    """Defaults and a template that a second merge would get wrong: ws-0 asks for the field
    defaults (review on_failure, no gates) that `defaults:` and the template override."""
    return phase(
        defaults={"review": "never", "retry_flaky": True, "execution_request": {"env": {"A": "1"}}},
        templates={
            "page": {
                "variables": {"name": None},
                "workstream": {
                    "execution_request": {"tool_id": "shell", "command": "echo {{ name }}"},
                    "acceptance_criteria": {"gates": [{"gate_id": "g", "command": "true"}]},
                },
            }
        },
        workstreams=[
            {
                "workstream_id": "ws-0",
                "review": "on_failure",
                "execution_request": {"command": "true", "env": {}},
            },
            *(
                {
                    "workstream_id": f"ws-{i}",
                    "dependencies": [f"ws-{i - 1}"],
                    "template": "page",
                    "with": {"name": f"p{i} é ✓ {'x' * (i % 7) * 40}"},
                }
                for i in range(1, n)
            ),
        ],
    )


def ref(i: int) -> ArtifactRef:
    sha = f"{i:064x}"
    return ArtifactRef(sha256=sha, size=i, uri=f"file:///a/{sha}", media_type="text/x-diff")


def test_the_lines_read_back_as_the_phase_written() -> None:
    spec = tricky_phase()
    assert spec.workstreams[0].review == "on_failure"  # the field's default, stated
    assert spec.workstreams[1].review == "never"
    document = RunDocument(phase=spec, patch_files={"ws-0": ref(1), "ws-7": ref(7)})
    lines = document_lines(document)
    assert len(lines) == len(spec.workstreams)
    full = document.model_dump_json()
    assert sum(map(len, lines)) < len(full) / 2, "the compact form leaves the defaults out"
    # ws-0's review is left out as the field's default: merging `defaults:` again would
    # make it "never"; ws-1 keeps the "never" it got from them.
    assert "review" not in json.loads(lines[0])["phase"]["workstreams"][0]
    assert json.loads(lines[1])["workstream"]["review"] == "never"

    text = "".join(line + "\n" for line in lines)
    for cut in (PART_CHARS, 997, 13):  # parts end anywhere: inside a line, a character
        reader = DocumentReader()
        for part in [text[i : i + cut] for i in range(0, len(text), cut)]:
            reader.add(part)
        assert reader.document() == document


def test_a_document_of_one_json_text_is_still_read() -> None:
    """As a run started before phases came in lines wrote it."""
    document = RunDocument(phase=tricky_phase(20), patch_files={"ws-3": ref(3)})
    reader = DocumentReader()
    for part in split(document.model_dump_json()):
        reader.add(part)
    assert reader.document() == document


def test_a_missing_last_part_is_an_error_not_a_shorter_phase() -> None:
    text = "".join(line + "\n" for line in document_lines(RunDocument(phase=tricky_phase(40))))
    reader = DocumentReader()
    reader.add(text[: len(text) - 30])
    with pytest.raises(ValueError, match="a part is missing"):
        reader.document()


def test_the_starter_stores_lines_and_every_reader_reads_them(tmp_path: Path) -> None:
    spec = tricky_phase()
    store = LocalArtifactStore(tmp_path / "artifacts")
    inline = RunInput(
        run_id="01M8T34EP4FHF6P0BD1XHV6QAH",
        phase=spec,
        repo_path=str(tmp_path),
        patch_files={"ws-2": ref(2)},
        options=RunOptions(),
    )
    sent = by_reference(inline, store)
    assert sent.phase is None and sent.document
    assert all(ref.size <= 4 * PART_CHARS for ref in sent.document)
    read = read_run_document(store, sent.document)
    assert read == RunDocument(phase=spec, patch_files={"ws-2": ref(2)})
