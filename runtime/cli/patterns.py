"""`uet patterns`: the recovery patterns uet learned — list and show them, approve, reject,
quarantine or roll one back, and export/import them as YAML files for code review."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.lib.telemetry import patterns as store
from activities.lib.telemetry.models import PatternUse, RecoveryPattern
from runtime.cli.base import command
from runtime.cli.learning import _group, telemetry
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, out
from schemas.learning import PatternFile

#: The published format of an exported pattern.
SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "recovery_pattern.v1.json"
PATTERN = "PATTERN"
PATTERN_HELP = "a pattern id (RP-…) or its error signature; `uet patterns list` shows them"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = _group(
        sub,
        "patterns",
        "recovery patterns learned from runs: what heals an error before an AI fix attempt",
        ["uet patterns list", "uet patterns show RP-227a242a6684", "uet patterns export patterns/"],
    )
    s = command(group, "list", patterns_list, "every pattern with its state", ["uet patterns list"])
    s.add_argument(
        "--state",
        choices=["draft", "active", "quarantined", "retired"],
        help="only patterns in this state",
    )
    _json(s, "a JSON list of {pattern_id, signature, state, version, confidence, uses, …}")
    s = command(
        group,
        "show",
        patterns_show,
        "one pattern: why it has its confidence, its versions and its latest uses",
        ["uet patterns show RP-227a242a6684", "uet patterns show lint:227a242a66848b1f --json"],
    )
    s.add_argument("pattern", metavar=PATTERN, help=PATTERN_HELP)
    _json(s, "the pattern with inputs, versions and uses")
    for name, handler, help in (
        ("approve", patterns_approve, "activate a draft or quarantined pattern"),
        ("reject", patterns_reject, "retire a pattern: it is never applied again"),
        ("quarantine", patterns_quarantine, "stop applying a pattern until approved again"),
    ):
        s = command(group, name, handler, help, [f"uet patterns {name} RP-227a242a6684"])
        s.add_argument("pattern", metavar=PATTERN, help=PATTERN_HELP)
        s.add_argument("--reason", default="", help="why (kept with the pattern)")
    s = command(
        group,
        "rollback",
        patterns_rollback,
        "make an earlier version's content current again (as a new version)",
        ["uet patterns rollback RP-227a242a6684 1.0"],
    )
    s.add_argument("pattern", metavar=PATTERN, help=PATTERN_HELP)
    s.add_argument("version", metavar="VERSION", help="the version to go back to, e.g. 1.0")
    s = command(
        group,
        "export",
        patterns_export,
        "write each pattern as DIR/<pattern_id>.yaml (schemas/recovery_pattern.v1.json)",
        ["uet patterns export patterns/", "uet patterns export patterns/ --state active"],
    )
    s.add_argument("directory", metavar="DIR", help="where the files go (created if missing)")
    s.add_argument("--state", choices=["draft", "active", "quarantined", "retired"])
    s = command(
        group,
        "import",
        patterns_import,
        "read DIR/*.yaml, validated against schemas/recovery_pattern.v1.json",
        ["uet patterns import patterns/"],
    )
    s.add_argument("directory", metavar="DIR", help="a folder of exported pattern files")


def _json(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", dest="as_json", action="store_true", help=f"{what} on stdout")


def summary(session: Session, pattern: RecoveryPattern) -> dict[str, Any]:
    current = store.current_version(session, pattern)
    return {
        "pattern_id": pattern.pattern_id,
        "signature": pattern.signature,
        "category": pattern.category,
        "state": pattern.state,
        "version": pattern.version,
        "confidence": current.confidence if current else None,
        "uses": pattern.uses,
        "successes": pattern.successes,
        "failures": pattern.failures,
        "flagged": pattern.flagged,
        "recovery_command": current.recovery_command if current else None,
        "state_reason": pattern.state_reason,
        "updated_at": pattern.updated_at.isoformat(),
    }


def patterns_list(state: str | None, as_json: bool) -> int:
    with telemetry() as db, db.session() as session:
        query = select(RecoveryPattern).order_by(RecoveryPattern.pattern_id)
        if state:
            query = query.where(RecoveryPattern.state == state)
        rows = [summary(session, p) for p in session.scalars(query)]
    if as_json:
        emit_json(rows)
        return ExitCode.COMPLETED
    if not rows:
        out.print("no recovery patterns yet: one is proposed after 3 fixes of the same error")
    for p in rows:
        fixer = f"  fixer: {p['recovery_command']}" if p["recovery_command"] else ""
        flag = "  (flagged)" if p["flagged"] else ""
        out.print(
            f"{p['pattern_id']:<16} {p['state']:<11} v{p['version']:<5} "
            f"conf {p['confidence'] or 0:.2f}  {p['successes']}/{p['uses']} healed  "
            f"{p['signature']}{fixer}{flag}",
            markup=False,
        )
    return ExitCode.COMPLETED


def patterns_show(pattern: str, as_json: bool) -> int:
    with telemetry() as db, db.session() as session:
        row = _get(session, pattern)
        data = summary(session, row)
        current = store.current_version(session, row)
        data["guidance"] = current.guidance if current else ""
        data["inputs"] = current.inputs if current else {}
        data["versions"] = [
            {
                "version": v.version,
                "origin": v.origin,
                "confidence": v.confidence,
                "recovery_command": v.recovery_command,
                "created_at": v.created_at.isoformat(),
            }
            for v in store.versions(session, row.pattern_id)
        ]
        uses = session.scalars(
            select(PatternUse)
            .where(PatternUse.pattern_id == row.pattern_id)
            .order_by(PatternUse.at.desc(), PatternUse.id.desc())
            .limit(20)
        ).all()
        data["uses_latest"] = [
            {
                "run_id": u.run_id,
                "workstream_id": u.workstream_id,
                "kind": u.kind,
                "version": u.version,
                "outcome": u.outcome,
                "at": u.at.isoformat(),
            }
            for u in uses
        ]
    if as_json:
        emit_json(data)
        return ExitCode.COMPLETED
    lines = [
        f"{data['pattern_id']}  {data['state']}  v{data['version']}  ({data['signature']}, "
        f"{data['category']})",
        f"  {data['state_reason']}" if data["state_reason"] else "",
        f"  confidence {data['confidence'] or 0:.2f} = "
        + ", ".join(f"{k} {v}" for k, v in data["inputs"].items() if k != "formula"),
        f"  uses: {data['uses']} ({data['successes']} healed, {data['failures']} failed)",
        f"  recovery command: {data['recovery_command'] or '(none: guidance only)'}",
        "  guidance:",
        *[f"    {line}" for line in str(data["guidance"]).splitlines()],
        "  versions: " + ", ".join(f"v{v['version']} ({v['origin']})" for v in data["versions"]),
    ]
    lines += [
        f"  {u['outcome']:<6} {u['kind']:<8} v{u['version']} run {u['run_id']} {u['workstream_id']}"
        for u in data["uses_latest"]
    ]
    out.print("\n".join(line for line in lines if line), markup=False)
    return ExitCode.COMPLETED


def _set(pattern: str, state: str, reason: str) -> int:
    with telemetry() as db, db.session() as session:
        row = _get(session, pattern)
        why = reason or f"set {state} by `uet patterns`"
        try:
            store.set_state(session, row.pattern_id, state, why)
        except store.PatternError as exc:
            raise UserError(str(exc)) from None
        out.print(f"{row.pattern_id} is {state} (v{row.version})")
    return ExitCode.COMPLETED


def patterns_approve(pattern: str, reason: str) -> int:
    return _set(pattern, "active", reason or "approved")


def patterns_reject(pattern: str, reason: str) -> int:
    return _set(pattern, "retired", reason or "rejected")


def patterns_quarantine(pattern: str, reason: str) -> int:
    return _set(pattern, "quarantined", reason or "quarantined by hand")


def patterns_rollback(pattern: str, version: str) -> int:
    with telemetry() as db, db.session() as session:
        row = _get(session, pattern)
        try:
            store.rollback(session, row.pattern_id, version)
        except store.PatternError as exc:
            raise UserError(str(exc)) from None
        out.print(
            f"{row.pattern_id} is at v{row.version}: the content of v{version.removeprefix('v')}"
        )
    return ExitCode.COMPLETED


def patterns_export(directory: str, state: str | None) -> int:
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{directory}: cannot create it ({exc.strerror or exc})") from None
    with telemetry() as db, db.session() as session:
        query = select(RecoveryPattern).order_by(RecoveryPattern.pattern_id)
        if state:
            query = query.where(RecoveryPattern.state == state)
        docs = [store.to_file(session, p) for p in session.scalars(query)]
    for doc in docs:
        text = yaml.safe_dump(doc.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
        (folder / f"{doc.pattern_id}.yaml").write_text(
            "# uet recovery pattern (schemas/recovery_pattern.v1.json)\n" + text, "utf-8"
        )
    out.print(f"wrote {len(docs)} pattern{'s' if len(docs) != 1 else ''} to {folder}")
    return ExitCode.COMPLETED


def patterns_import(directory: str) -> int:
    folder = Path(directory)
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    if not folder.is_dir():
        raise UserError(f"{directory}: no such folder; `uet patterns export DIR` writes one")
    schema = yaml.safe_load(SCHEMA.read_text("utf-8"))
    docs = [(path, _read(path, schema)) for path in files]
    with telemetry() as db, db.session() as session:
        for path, doc in docs:
            row, changed = store.from_file(session, doc)
            what = f"v{row.version}" if changed else f"v{row.version} (unchanged)"
            out.print(f"{path.name}: {row.pattern_id} {row.state} {what}", markup=False)
    out.print(f"imported {len(docs)} pattern{'s' if len(docs) != 1 else ''}")
    return ExitCode.COMPLETED


def _read(path: Path, schema: dict[str, Any]) -> PatternFile:
    """One file, validated against the published schema; every mistake one line."""
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}{where}: not YAML ({getattr(exc, 'problem', exc)})") from None
    errors = sorted(
        jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.path)
    )
    if errors:
        first = errors[0]
        field = ".".join(str(p) for p in first.path) or "(top)"
        raise UserError(
            f"{path}: {field}: {first.message} (schemas/recovery_pattern.v1.json)"
        ) from None
    try:
        return PatternFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise UserError(f"{path}: {field}: {first['msg']}") from None


def _get(session: Session, pattern: str) -> RecoveryPattern:
    try:
        return store.get(session, pattern)
    except store.PatternError as exc:
        raise UserError(str(exc)) from None
