"""uet's data converter: pydantic JSON, with the large payloads compressed.

A phase's history holds every part of its documents that it reads or writes: the phase
(by reference, read again by each continued execution), its journal and its state across
continue-as-new, each in parts of ~48 KB of JSON lines. Compressed they are a tenth of that,
and a run of 10,000 workstreams fits its histories under the server's 10 MiB warning. What a
person opens in the Web UI (inputs, results, events of one workstream: well under
``COMPRESS_FROM``) stays readable JSON; a compressed part shows as ``binary/zlib``.

Every client and worker of a deployment must use it (``runtime.connect`` does); a history
written before it decodes unchanged, as its payloads carry no ``binary/zlib`` encoding.
"""

from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

#: Payloads from this size on are compressed: document parts and large records, not what a
#: person reads.
COMPRESS_FROM = 16 * 1024
ENCODING = b"binary/zlib"


class CompressLarge(PayloadCodec):
    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encode(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decode(p) for p in payloads]

    @staticmethod
    def _encode(payload: Payload) -> Payload:
        if len(payload.data) < COMPRESS_FROM:
            return payload
        packed = zlib.compress(payload.SerializeToString(), level=6)
        return Payload(metadata={"encoding": ENCODING}, data=packed)

    @staticmethod
    def _decode(payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        return Payload.FromString(zlib.decompress(payload.data))


DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, payload_codec=CompressLarge()
)
