"""uet's data converter: pydantic JSON, with the large payloads compressed.

A phase's history holds every part of its documents that it reads or writes: the phase
(by reference, read again by each continued execution), its journal and its state across
continue-as-new, each in parts of ~48 KB of JSON lines. Compressed they are a tenth of that,
and a run of 10,000 workstreams fits its histories under the server's 10 MiB warning. What a
person opens in the Web UI (inputs, results, events of one workstream: well under
``COMPRESS_FROM``) stays readable JSON; a compressed part shows as ``binary/zlib``.

It is a payload *converter*, not a codec: a codec makes the SDK visit every payload of every
workflow activation and completion, which cost a trivial workstream 7 % of the worker's CPU
(bench/floor.py under py-spy); a converter runs only where a value is converted. Every client
and worker of a deployment must use it (``runtime.connect`` does); a history written before it
decodes unchanged, as its payloads are all ``json/plain``.
"""

from __future__ import annotations

import zlib
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)

#: Payloads from this size on are compressed: document parts and large records, not what a
#: person reads.
COMPRESS_FROM = 16 * 1024
ENCODING = "binary/zlib"


class CompressedJSON(EncodingPayloadConverter):
    """Pydantic JSON, zlib-compressed when it is large (small values stay ``json/plain``)."""

    def __init__(self, json: PydanticJSONPlainPayloadConverter) -> None:
        self.json = json

    @property
    def encoding(self) -> str:
        return ENCODING

    def to_payload(self, value: Any) -> Payload | None:
        payload = self.json.to_payload(value)
        if payload is None or len(payload.data) < COMPRESS_FROM:
            return payload
        return Payload(
            metadata={"encoding": ENCODING.encode()}, data=zlib.compress(payload.data, 6)
        )

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        plain = Payload(
            metadata={"encoding": self.json.encoding.encode()}, data=zlib.decompress(payload.data)
        )
        return self.json.from_payload(plain, type_hint)


def _converters() -> tuple[EncodingPayloadConverter, ...]:
    json = PydanticJSONPlainPayloadConverter()
    converters: list[EncodingPayloadConverter] = []
    for converter in DefaultPayloadConverter.default_encoding_payload_converters:
        if isinstance(converter, JSONPlainPayloadConverter):
            # Tried first for every value; the plain one decodes ``json/plain``.
            converters += [CompressedJSON(json), json]
        else:
            converters.append(converter)
    return tuple(converters)


#: Made once: the SDK makes a payload converter for every workflow activation, and these
#: hold no state of their own.
CONVERTERS = _converters()


class UetPayloadConverter(CompositePayloadConverter):
    """The SDK's default converters, JSON replaced by pydantic's, compressed when large."""

    def __init__(self) -> None:
        super().__init__(*CONVERTERS)


DATA_CONVERTER = DataConverter(payload_converter_class=UetPayloadConverter)
