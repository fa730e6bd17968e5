"""What `uet init` learns about a repository: notes (found, chose, could not decide) with
their evidence, and the workspace and gates it picks from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

NoteKind = Literal["found", "chose", "undecided"]

_LABELS: dict[str, str] = {"found": "found", "chose": "chose", "undecided": "could not decide"}


@dataclass(frozen=True)
class Note:
    """One line of the bootstrap report."""

    kind: NoteKind
    language: str | None
    message: str
    evidence: tuple[str, ...] = ()

    def line(self) -> str:
        subject = f"{self.language}: " if self.language else ""
        where = f" [{', '.join(self.evidence)}]" if self.evidence else ""
        text = f"{_LABELS[self.kind]}: {subject}{self.message}{where}"
        return " ".join(text.split())  # one line, always (it is also a YAML comment)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "language": self.language,
            "message": self.message,
            "evidence": list(self.evidence),
        }


@dataclass(frozen=True)
class Gate:
    gate_id: str
    kind: str
    command: str
    after: tuple[str, ...] = ()
    timeout_s: float | None = None

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"gate_id": self.gate_id, "kind": self.kind, "command": self.command}
        if self.after:
            out["after"] = list(self.after)
        if self.timeout_s is not None:
            out["timeout_s"] = self.timeout_s
        return out


@dataclass
class Profile:
    """The repository as `uet init` sees it, filled in by each language's detector."""

    root: Path
    languages: list[str] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    setup: list[str] = field(default_factory=list)
    cache: list[dict[str, Any]] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    gates: list[Gate] = field(default_factory=list)

    def language(self, name: str) -> None:
        if name not in self.languages:
            self.languages.append(name)

    def found(self, language: str | None, message: str, *evidence: str) -> None:
        self.notes.append(Note("found", language, message, evidence))

    def chose(self, language: str | None, message: str, *evidence: str) -> None:
        self.notes.append(Note("chose", language, message, evidence))

    def undecided(self, language: str | None, message: str, *evidence: str) -> None:
        self.notes.append(Note("undecided", language, message, evidence))

    def gate(self, gate: Gate, language: str | None, why: str, *evidence: str) -> None:
        self.gates.append(gate)
        self.chose(
            language, f"gate {gate.gate_id} ({gate.kind}): `{gate.command}` — {why}", *evidence
        )

    def has_gate(self, kind: str) -> bool:
        return any(g.kind == kind for g in self.gates)
