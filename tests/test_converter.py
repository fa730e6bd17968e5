"""uet's data converter compresses the large payloads (document parts) and leaves what a person
reads in the Web UI as JSON."""

from __future__ import annotations

from runtime.converter import COMPRESS_FROM, DATA_CONVERTER, ENCODING
from schemas.workspace import PartText


async def test_a_document_part_is_compressed_and_reads_back() -> None:
    part = PartText(text='{"workstream":{"workstream_id":"w-1"}}\n' * 1200)  # ~48 KB
    (payload,) = await DATA_CONVERTER.encode([part])
    assert payload.metadata["encoding"] == ENCODING.encode()
    assert len(payload.data) < len(part.text) / 10
    assert await DATA_CONVERTER.decode([payload], [PartText]) == [part]


async def test_a_small_payload_stays_json() -> None:
    part = PartText(text="x" * (COMPRESS_FROM // 2))
    (payload,) = await DATA_CONVERTER.encode([part])
    assert payload.metadata["encoding"] == b"json/plain"
    assert await DATA_CONVERTER.decode([payload], [PartText]) == [part]
