"""Deterministic ULIDs inside workflows.

The library's own constructor reads the system clock and random bytes, which breaks replay.
Here the 48-bit timestamp comes from workflow time and the 80 random bits from the workflow's
seeded RNG; a counter keeps ids made in the same millisecond ordered.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ulid import ULID


class IdFactory:
    def __init__(self) -> None:
        self._last_ms = -1
        self._counter = 0

    def new(self) -> str:
        ms = workflow.time_ns() // 1_000_000
        if ms == self._last_ms:
            self._counter += 1
        else:
            self._last_ms, self._counter = ms, 0
        # High 16 of the 80 random bits carry the counter so same-ms ids sort by creation.
        randomness = (self._counter << 64) | workflow.random().getrandbits(64)
        return str(ULID.from_bytes(ms.to_bytes(6, "big") + randomness.to_bytes(10, "big")))
