"""Slots for running workstreams: resizable (a budget warning halves them) and, when scarce,
handed out by priority (eager scheduling runs the longest remaining path first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio import workflow


class Slots:
    def __init__(self, size: int) -> None:
        self.size = size
        self.used = 0
        self._waiting: list[tuple[Any, int]] = []
        self._tickets = 0

    def hold(self, count: int) -> None:
        """``count`` slots kept out of the hands of the waiters (someone who is not waiting
        yet needs them), until :meth:`give_back`."""
        self.used += count

    def give_back(self, count: int) -> None:
        """The slots :meth:`hold` kept, for the waiters again (at the next condition check)."""
        self.used -= count

    def handing(self) -> bool:
        """A slot is free and someone waits for it: it is theirs at the next condition check."""
        return self.used < self.size and bool(self._waiting)

    @asynccontextmanager
    async def take(self, priority: Any = 0) -> AsyncIterator[None]:
        """A slot; among waiters the lowest ``priority`` goes first, then the earliest."""
        self._tickets += 1
        ticket = (priority, self._tickets)
        self._waiting.append(ticket)
        try:
            await workflow.wait_condition(
                lambda: self.used < self.size and min(self._waiting) == ticket
            )
        finally:
            self._waiting.remove(ticket)
        self.used += 1
        try:
            yield
        finally:
            self.used -= 1
