"""Slots for running workstreams: resizable (a budget warning halves them) and, when scarce,
handed out by priority (eager scheduling runs the longest remaining path first).

A few places *ahead* of the slots (``PhaseSpec.prepare_ahead``): a workstream that holds one
is started while every slot is busy, makes its checkout ready and waits, at its tool's start,
for a slot (its tool activity asks the phase, :meth:`Slots.granted`). When a slot frees, it
goes to the best waiter, prepared or not: a prepared one starts its tool at once; one that
is not (a better priority came along) starts its child then, as without places ahead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from temporalio import workflow

Ticket = tuple[Any, int]


@dataclass
class Lease:
    """One workstream's claim: a slot (``granted``) or, before that, a place ahead."""

    ticket: Ticket
    granted: bool = False
    #: The claim is given up: the workstream's child ended before it was granted a slot.
    closed: bool = False
    #: The child workflow id whose tool asks for this lease's slot (set when started ahead).
    key: str | None = None


class Slots:
    def __init__(self, size: int, ahead: int = 0) -> None:
        self.size = size
        self.used = 0
        #: Places ahead of the slots, and how many are held.
        self.ahead = ahead
        self.ahead_used = 0
        self._waiting: list[Ticket] = []
        #: Waiters that may take a place ahead (their child's first step is a tool run).
        self._eligible: set[Ticket] = set()
        #: Holders of a place ahead, not yet granted a slot.
        self._prepared: list[Ticket] = []
        #: Started ahead, by the child workflow id their tool asks with.
        self._leases: dict[str, Lease] = {}
        self._tickets = 0

    def hold(self, count: int) -> None:
        """``count`` slots kept out of the hands of the waiters (someone who is not waiting
        yet needs them), until :meth:`give_back`."""
        self.used += count

    def give_back(self, count: int) -> None:
        """The slots :meth:`hold` kept, for the waiters again (at the next condition check)."""
        self.used -= count

    def handing(self) -> bool:
        """A slot or a place ahead is free and someone waits for it: it is theirs at the next
        condition check. (A merge waits for both: the start of one going ahead holds it back to
        the next workflow task, so the answer to a slot handed over in this one goes first.)"""
        if self.used < self.size and (self._waiting or self._prepared):
            return True
        return self.ahead_used < self.ahead and bool(self._eligible)

    @asynccontextmanager
    async def take(self, priority: Any = 0, *, ahead: bool = False) -> AsyncIterator[Lease]:
        """A slot, or (``ahead``) a place ahead of them while none is free; among waiters the
        lowest ``priority`` goes first, then the earliest. A lease taken ahead is granted its
        slot by :meth:`grant`."""
        self._tickets += 1
        ticket = (priority, self._tickets)
        lease = Lease(ticket)
        self._waiting.append(ticket)
        if ahead:
            self._eligible.add(ticket)
        try:
            # Decided in the check itself: what the lease took is what the check saw.
            await workflow.wait_condition(
                lambda: self._takes_slot(lease) or self._goes_ahead(lease)
            )
        finally:
            self._waiting.remove(ticket)
            self._eligible.discard(ticket)
        if lease.granted:
            self.used += 1
        else:
            self.ahead_used += 1
            self._prepared.append(ticket)
        try:
            yield lease
        finally:
            lease.closed = True
            if lease.key is not None:
                del self._leases[lease.key]
            if lease.granted:
                self.used -= 1
            else:
                self.ahead_used -= 1
                self._prepared.remove(ticket)

    def started(self, lease: Lease, key: str) -> None:
        """The lease's child is started ahead as ``key``: its tool asks for the slot by it."""
        lease.key = key
        self._leases[key] = lease

    async def grant(self, lease: Lease) -> None:
        """Until a lease taken ahead is granted its slot (at once if it has it)."""
        if not lease.granted:
            await workflow.wait_condition(lambda: self._takes_slot(lease))

    async def granted(self, key: str) -> bool:
        """Whether the workstream started ahead as ``key`` has its slot: waits until it has,
        or until its claim is given up (False, as for a key this phase does not know)."""
        lease = self._leases.get(key)
        if lease is None:
            return False
        await workflow.wait_condition(lambda: lease.granted or lease.closed)
        return lease.granted

    def _takes_slot(self, lease: Lease) -> bool:
        """A slot is free and ``lease`` is the best of everyone waiting for one."""
        if lease.granted or self.used >= self.size:
            return False
        if min(self._waiting + self._prepared) != lease.ticket:
            return False
        lease.granted = True
        if lease.ticket in self._prepared:
            # Moved here, in the check: a cancel of grant() before its next step (its child
            # ended in the same workflow task) must not leave the counts half moved.
            self._prepared.remove(lease.ticket)
            self.ahead_used -= 1
            self.used += 1
        return True

    def _goes_ahead(self, lease: Lease) -> bool:
        """A place ahead is free and ``lease`` is the best of those who may take one."""
        if self.ahead_used >= self.ahead or lease.ticket not in self._eligible:
            return False
        return min(self._eligible) == lease.ticket
