"""A semaphore whose size can change while work waits for it (a budget warning halves it)."""

from __future__ import annotations

from types import TracebackType

from temporalio import workflow


class Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0

    async def __aenter__(self) -> None:
        # Waiters are woken in the order they started waiting: deterministic on replay.
        await workflow.wait_condition(lambda: self.used < self.size)
        self.used += 1

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.used -= 1
