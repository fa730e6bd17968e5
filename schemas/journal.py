"""The run journal as the artifact store keeps it while the run goes on.

At the end of each step the phase writes what can no longer change — the ledger entries of
finished workstreams, the events so far, and later moves of entries already written (a
rollback) — as JSON Lines parts of at most ~48 KB, and keeps only their references
(``RunRecord.journal``). Neither the phase's memory nor any payload grows with the run.
Readers replay the parts in order, then the run's live tail.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from schemas.base import Model
from schemas.events import RunEvent
from schemas.ledger import LedgerEntry, PatchState


class LedgerMove(Model):
    """A move of a ledger entry that was already written out (its state_history grows)."""

    patch_id: str
    state: PatchState
    at: datetime = Field(description="workflow time")
    reason: str = ""


class JournalRecord(Model):
    """One line of a journal part: exactly one of the three."""

    entry: LedgerEntry | None = None
    event: RunEvent | None = None
    move: LedgerMove | None = None
