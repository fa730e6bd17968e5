"""Recovery patterns: learned from resolutions, applied to the next occurrence, judged by
their uses. Error → fix → success → learn → apply next time.

A pattern belongs to one error signature. Its *content* (what fixed the error: files, an
excerpt of the fixing diff, a reviewer's instructions, a recovery command that reproduces
the fix) is versioned: v1.0, v1.1, … every change a new version, the old ones kept, and a
rollback is a new version with an old version's content. Its *state* says whether it is
used: ``draft`` (waits for a person), ``active``, ``quarantined`` (it failed too often) or
``retired`` (rejected). Everything here runs in activities and the CLI, inside one database
session each.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from activities.lib.telemetry.models import (
    ErrorPattern,
    PatternUse,
    PatternVersion,
    RecoveryPattern,
    Resolution,
)
from schemas.learning import PatternFile, PatternFileVersion, RecoveryPlan
from schemas.spec import Learning

#: A pattern is judged on its first uses: quarantined once more than this share failed…
QUARANTINE_FAILURE_RATE = 0.4
#: … among at least this many uses (one unlucky use says little) …
QUARANTINE_MIN_USES = 3
#: … within its first this many uses; later, below FLAG_SUCCESS_RATE it is flagged.
PROBATION_USES = 10
FLAG_SUCCESS_RATE = 0.8
#: What the guidance quotes of a fixing diff.
EXCERPT_CHARS = 1200

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


class PatternError(Exception):
    """A person asked for something that cannot be done (unknown pattern, bad version)."""


@dataclass(frozen=True)
class Proposal:
    """What the resolutions of one signature say, and how sure that is."""

    guidance: str
    recovery_command: str | None
    confidence: float
    inputs: dict[str, Any]


def pattern_id_for(signature: str) -> str:
    """Stable, short and readable: ``RP-`` and the signature's hash part."""
    tail = signature.rsplit(":", 1)[-1]
    return f"RP-{re.sub(r'[^A-Za-z0-9]', '', tail)[:12] or 'x'}"


# -- learning ----------------------------------------------------------------------------------


def propose(session: Session, signature: str) -> Proposal | None:
    """The pattern the resolutions of ``signature`` make, or None without any."""
    rows = _learned_from(session, signature)
    if not rows:
        return None
    stats = session.get(ErrorPattern, signature)
    success = (
        min(stats.resolutions / stats.occurrences, 1.0) if stats and stats.occurrences else 1.0
    )
    similarity = _similarity(rows)
    coverage = sum(min(r.gates_ran / r.gates_total, 1.0) for r in rows if r.gates_total) / len(rows)
    command = _recovery_command(rows)
    latest = rows[-1]
    adjust = next((r.adjust for r in reversed(rows) if r.adjust), "")
    guidance = _guidance(latest, adjust, command)
    fields = [bool(guidance), bool(latest.files), bool(latest.excerpt), bool(command)]
    fields.append(latest.category not in ("", "unknown"))
    completeness = sum(fields) / len(fields)
    confidence = 0.4 * similarity + 0.3 * success + 0.2 * coverage + 0.1 * completeness
    inputs = {
        "resolutions": len(rows),
        "similarity": round(similarity, 3),
        "success_rate": round(success, 3),
        "test_coverage": round(coverage, 3),
        "schema_completeness": round(completeness, 3),
        "formula": "0.4*similarity + 0.3*success_rate + 0.2*test_coverage "
        "+ 0.1*schema_completeness",
    }
    return Proposal(guidance, command, round(confidence, 3), inputs)


def learn(session: Session, signature: str, category: str, learning: Learning) -> None:
    """After a resolution of ``signature``: propose its pattern once there are enough, or
    give the existing one a new version when what fixes it changed."""
    if learning.mode == "off":
        return
    proposal = propose(session, signature)
    if proposal is None:
        return
    at = datetime.now(UTC)
    pattern = session.scalar(select(RecoveryPattern).where(RecoveryPattern.signature == signature))
    if pattern is None:
        if proposal.inputs["resolutions"] < learning.min_resolutions:
            return
        auto = learning.mode == "aggressive" and proposal.confidence >= learning.threshold
        pattern = RecoveryPattern(
            pattern_id=pattern_id_for(signature),
            signature=signature,
            category=category,
            state="active" if auto else "draft",
            state_reason=_activation(proposal, learning, auto),
            version="1.0",
            uses=0,
            successes=0,
            failures=0,
            flagged=False,
            created_at=at,
            updated_at=at,
        )
        session.add(pattern)
        session.add(_version(pattern.pattern_id, "1.0", proposal, "learned", at))
        session.flush()
        return
    current = current_version(session, pattern)
    if current is not None and _same_content(current, proposal):
        current.confidence, current.inputs = proposal.confidence, proposal.inputs
    else:
        pattern.version = _next_version(session, pattern.pattern_id)
        session.add(_version(pattern.pattern_id, pattern.version, proposal, "learned", at))
    if (
        pattern.state == "draft"
        and learning.mode == "aggressive"
        and proposal.confidence >= learning.threshold
    ):
        pattern.state, pattern.state_reason = "active", _activation(proposal, learning, True)
    pattern.updated_at = at


def _activation(proposal: Proposal, learning: Learning, auto: bool) -> str:
    if auto:
        return f"active by itself: confidence {proposal.confidence:.2f} ≥ {learning.threshold:.2f}"
    if learning.mode == "review":
        return "draft: learning mode review waits for `uet patterns approve`"
    return (
        f"draft: confidence {proposal.confidence:.2f} < {learning.threshold:.2f}; "
        "`uet patterns approve` activates it"
    )


def _learned_from(session: Session, signature: str) -> list[Resolution]:
    """Resolutions by a person's or a tool's fix; not those the pattern itself made."""
    return list(
        session.scalars(
            select(Resolution)
            .where(Resolution.signature == signature, Resolution.pattern_id.is_(None))
            .order_by(Resolution.at, Resolution.id)
        )
    )


def _similarity(rows: list[Resolution]) -> float:
    """Mean over pairs of resolutions: half how alike their files are, half how alike the
    changed lines are (Jaccard of token sets)."""
    if len(rows) < 2:
        return 1.0
    scores = [
        0.5 * _jaccard(set(a.files), set(b.files))
        + 0.5 * _jaccard(_tokens(a.excerpt), _tokens(b.excerpt))
        for a, b in itertools.combinations(rows, 2)
    ]
    return sum(scores) / len(scores)


def _jaccard(a: set[str], b: set[str]) -> float:
    return 1.0 if not a and not b else len(a & b) / len(a | b)


def _tokens(diff: str) -> set[str]:
    changed = [
        line[1:]
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    return set(_TOKEN.findall("\n".join(changed)))


def _recovery_command(rows: list[Resolution]) -> str | None:
    """The fixer that reproduced at least half of the fixes, the most frequent first."""
    counts = Counter(r.reproduced_by for r in rows if r.reproduced_by)
    if not counts:
        return None
    command, n = counts.most_common(1)[0]
    return command if n * 2 >= len(rows) else None


def _guidance(latest: Resolution, adjust: str, command: str | None) -> str:
    """The stable part of what the next fix attempt is told (counts are added when used)."""
    lines = []
    if latest.files:
        hunks = f" ({latest.hunks} hunk{'s' if latest.hunks != 1 else ''})" if latest.hunks else ""
        lines.append(f"The fix changed {', '.join(latest.files[:8])}{hunks}.")
    if adjust:
        lines.append(f"A reviewer asked: {adjust.strip()[:400]}")
    if command:
        lines.append(f"Running `{command}` reproduces the fix.")
    if latest.excerpt:
        lines.append(f"Excerpt of the fixing diff:\n```diff\n{latest.excerpt[:EXCERPT_CHARS]}\n```")
    return "\n".join(lines)


def _same_content(version: PatternVersion, proposal: Proposal) -> bool:
    return (
        version.guidance == proposal.guidance
        and version.recovery_command == proposal.recovery_command
    )


def _version(
    pattern_id: str, version: str, proposal: Proposal, origin: str, at: datetime
) -> PatternVersion:
    return PatternVersion(
        pattern_id=pattern_id,
        version=version,
        guidance=proposal.guidance,
        recovery_command=proposal.recovery_command,
        recovery_timeout_s=120.0,
        confidence=proposal.confidence,
        inputs=proposal.inputs,
        origin=origin,
        created_at=at,
    )


def _next_version(session: Session, pattern_id: str) -> str:
    versions = session.scalars(
        select(PatternVersion.version).where(PatternVersion.pattern_id == pattern_id)
    ).all()
    major, minor = max((_parse(v) for v in versions), default=(1, -1))
    return f"{major}.{minor + 1}"


def _parse(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor or 0)


def current_version(session: Session, pattern: RecoveryPattern) -> PatternVersion | None:
    return session.scalar(
        select(PatternVersion).where(
            PatternVersion.pattern_id == pattern.pattern_id,
            PatternVersion.version == pattern.version,
        )
    )


def versions(session: Session, pattern_id: str) -> list[PatternVersion]:
    rows = session.scalars(
        select(PatternVersion).where(PatternVersion.pattern_id == pattern_id)
    ).all()
    return sorted(rows, key=lambda v: _parse(v.version))


# -- applying ------------------------------------------------------------------------------------


def lookup(session: Session, signature: str) -> RecoveryPlan:
    """The active pattern for ``signature``: its guidance (with how often it worked) and its
    recovery command."""
    pattern = session.scalar(select(RecoveryPattern).where(RecoveryPattern.signature == signature))
    if pattern is None or pattern.state != "active":
        return RecoveryPlan()
    version = current_version(session, pattern)
    if version is None:
        return RecoveryPlan()
    stats = session.get(ErrorPattern, signature)
    seen = (
        f"This error (signature `{signature}`) was seen {stats.occurrences} times and fixed "
        f"{stats.resolutions} times before"
        if stats
        else f"This error (signature `{signature}`) was fixed before"
    )
    used = f"; pattern {pattern.pattern_id} v{pattern.version} healed {pattern.successes} of "
    used += f"{pattern.uses} uses" if pattern.uses else ""
    guidance = f"{seen}{used if pattern.uses else ''}.\n{version.guidance}".strip()
    return RecoveryPlan(
        found=True,
        pattern_id=pattern.pattern_id,
        version=pattern.version,
        confidence=version.confidence,
        guidance=guidance,
        command=version.recovery_command,
        timeout_s=version.recovery_timeout_s,
        source="pattern",
    )


def record_use(
    session: Session,
    *,
    key: str,
    pattern_id: str,
    version: str,
    kind: str,
    run_id: str,
    workstream_id: str,
    passed: bool,
    at: datetime,
) -> None:
    """One use of a pattern (counted once per key) and what it does to its state."""
    if session.scalar(select(PatternUse.id).where(PatternUse.key == key)) is not None:
        return
    pattern = session.get(RecoveryPattern, pattern_id)
    if pattern is None:
        return
    session.add(
        PatternUse(
            key=key,
            pattern_id=pattern_id,
            version=version,
            kind=kind,
            run_id=run_id,
            workstream_id=workstream_id,
            outcome="passed" if passed else "failed",
            at=at,
        )
    )
    pattern.uses += 1
    if passed:
        pattern.successes += 1
    else:
        pattern.failures += 1
    pattern.updated_at = at
    judge(session, pattern)


def judge(session: Session, pattern: RecoveryPattern) -> None:
    """Quarantine a pattern that fails too often on probation; flag one that slips later."""
    if pattern.state != "active" or not pattern.uses:
        return
    rate = pattern.failures / pattern.uses
    if (
        pattern.uses <= PROBATION_USES
        and pattern.uses >= QUARANTINE_MIN_USES
        and rate > QUARANTINE_FAILURE_RATE
    ):
        pattern.state = "quarantined"
        pattern.state_reason = quarantine_report(session, pattern)
    elif pattern.uses > PROBATION_USES:
        pattern.flagged = pattern.successes / pattern.uses < FLAG_SUCCESS_RATE
        if pattern.flagged:
            pattern.state_reason = (
                f"flagged for improvement: {pattern.successes} of {pattern.uses} uses healed "
                f"({pattern.successes / pattern.uses:.0%} < {FLAG_SUCCESS_RATE:.0%})"
            )


def quarantine_report(session: Session, pattern: RecoveryPattern) -> str:
    uses = session.scalars(
        select(PatternUse)
        .where(PatternUse.pattern_id == pattern.pattern_id)
        .order_by(PatternUse.at, PatternUse.id)
    ).all()
    lines = [
        f"quarantined by itself: {pattern.failures} of {pattern.uses} uses failed "
        f"({pattern.failures / pattern.uses:.0%} > {QUARANTINE_FAILURE_RATE:.0%} within the "
        f"first {PROBATION_USES} uses)"
    ]
    lines += [
        f"  {u.outcome:<6} {u.kind:<8} v{u.version} run {u.run_id} {u.workstream_id}"
        for u in uses[-PROBATION_USES:]
    ]
    lines.append("`uet patterns approve` puts it back once fixed (or `rollback` to a version)")
    return "\n".join(lines)


# -- what people do with them --------------------------------------------------------------------


def get(session: Session, pattern_id: str) -> RecoveryPattern:
    pattern = session.get(RecoveryPattern, pattern_id)
    if pattern is None:
        pattern = session.scalar(
            select(RecoveryPattern).where(RecoveryPattern.signature == pattern_id)
        )
    if pattern is None:
        known = session.scalar(select(func.count()).select_from(RecoveryPattern)) or 0
        raise PatternError(
            f"no pattern {pattern_id!r} ({known} known: `uet patterns list` shows them)"
        )
    return pattern


def set_state(session: Session, pattern_id: str, state: str, reason: str) -> RecoveryPattern:
    pattern = get(session, pattern_id)
    pattern.state, pattern.state_reason = state, reason
    if state == "active":
        # A fresh start on probation: its earlier failures led to the change just approved.
        pattern.uses = pattern.successes = pattern.failures = 0
        pattern.flagged = False
    pattern.updated_at = datetime.now(UTC)
    return pattern


def rollback(session: Session, pattern_id: str, to: str) -> RecoveryPattern:
    """A new version with the content of version ``to``."""
    pattern = get(session, pattern_id)
    to = to.removeprefix("v")
    old = next((v for v in versions(session, pattern.pattern_id) if v.version == to), None)
    if old is None:
        have = ", ".join(f"v{v.version}" for v in versions(session, pattern.pattern_id))
        raise PatternError(f"{pattern.pattern_id} has no version v{to} (it has {have})")
    at = datetime.now(UTC)
    pattern.version = _next_version(session, pattern.pattern_id)
    session.add(
        PatternVersion(
            pattern_id=pattern.pattern_id,
            version=pattern.version,
            guidance=old.guidance,
            recovery_command=old.recovery_command,
            recovery_timeout_s=old.recovery_timeout_s,
            confidence=old.confidence,
            inputs={**old.inputs, "rollback_of": old.version},
            origin="rollback",
            created_at=at,
        )
    )
    pattern.updated_at = at
    return pattern


def to_file(session: Session, pattern: RecoveryPattern) -> PatternFile:
    history = versions(session, pattern.pattern_id)
    current = next((v for v in history if v.version == pattern.version), None)
    return PatternFile(
        pattern_id=pattern.pattern_id,
        signature=pattern.signature,
        category=pattern.category,
        state=pattern.state,  # type: ignore[arg-type]
        version=pattern.version,
        guidance=current.guidance if current else "",
        recovery_command=current.recovery_command if current else None,
        recovery_timeout_s=current.recovery_timeout_s if current else 120,
        confidence=min(max(current.confidence, 0.0), 1.0) if current else 0.0,
        inputs={
            k: v for k, v in (current.inputs if current else {}).items() if not isinstance(v, dict)
        },
        uses=pattern.uses,
        successes=pattern.successes,
        history=[
            PatternFileVersion(
                version=v.version,
                guidance=v.guidance,
                recovery_command=v.recovery_command,
                confidence=min(max(v.confidence, 0.0), 1.0),
                origin=v.origin,
            )
            for v in history
            if v.version != pattern.version
        ],
    )


def from_file(session: Session, doc: PatternFile) -> tuple[RecoveryPattern, bool]:
    """Import ``doc``; (the pattern, whether its content changed). An existing pattern of the
    same signature gets a new version when the content differs; its uses stay its own."""
    at = datetime.now(UTC)
    pattern = session.scalar(
        select(RecoveryPattern).where(RecoveryPattern.signature == doc.signature)
    )
    proposal = Proposal(doc.guidance, doc.recovery_command, doc.confidence, dict(doc.inputs))
    if pattern is None:
        pattern = RecoveryPattern(
            pattern_id=doc.pattern_id,
            signature=doc.signature,
            category=doc.category,
            state=doc.state,
            state_reason="imported",
            version=doc.version,
            uses=0,
            successes=0,
            failures=0,
            flagged=False,
            created_at=at,
            updated_at=at,
        )
        session.add(pattern)
        for old in doc.history:
            session.add(
                _version(
                    doc.pattern_id,
                    old.version,
                    Proposal(old.guidance, old.recovery_command, old.confidence, {}),
                    old.origin,
                    at,
                )
            )
        row = _version(doc.pattern_id, doc.version, proposal, "imported", at)
        row.recovery_timeout_s = doc.recovery_timeout_s
        session.add(row)
        session.flush()
        return pattern, True
    current = current_version(session, pattern)
    changed = current is None or not _same_content(current, proposal)
    if changed:
        pattern.version = _next_version(session, pattern.pattern_id)
        row = _version(pattern.pattern_id, pattern.version, proposal, "imported", at)
        row.recovery_timeout_s = doc.recovery_timeout_s
        session.add(row)
    if pattern.state != doc.state:
        pattern.state, pattern.state_reason = doc.state, "imported"
    pattern.updated_at = at
    return pattern, changed
