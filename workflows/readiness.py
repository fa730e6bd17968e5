"""Eager mode's frontier: the workstreams whose dependencies are all integrated, kept up to
date one integration at a time. Scanning every workstream's dependencies after each
integration made a phase of n eager workstreams cost O(n²) in the workflow."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from schemas.spec import PhaseSpec


class Readiness:
    def __init__(self, phase: PhaseSpec, merged: set[str]) -> None:
        self._merged = set(merged)
        self._dependents: dict[str, list[str]] = {}
        self._unmet: dict[str, int] = {}
        for ws in phase.workstreams:
            self._unmet[ws.workstream_id] = len(set(ws.dependencies) - self._merged)
            for dep in set(ws.dependencies):
                self._dependents.setdefault(dep, []).append(ws.workstream_id)
        #: May start (or has): every dependency integrated, itself not yet. Only ever read
        #: through a sort, so its own order decides nothing.
        self.frontier = {w for w, n in self._unmet.items() if n == 0 and w not in self._merged}

    def readies(self, ws_id: str) -> bool:
        """Merging ``ws_id`` would make a workstream ready (its last dependency)."""
        return any(
            self._unmet[d] == 1 and d not in self._merged for d in self._dependents.get(ws_id, [])
        )

    def merged(self, ws_id: str) -> None:
        """``ws_id`` is integrated (or had nothing to integrate): its dependents move on."""
        if ws_id in self._merged:
            return
        self._merged.add(ws_id)
        self.frontier.discard(ws_id)
        for dependent in self._dependents.get(ws_id, []):
            self._unmet[dependent] -= 1
            if self._unmet[dependent] == 0 and dependent not in self._merged:
                self.frontier.add(dependent)
