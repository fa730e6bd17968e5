"""Generate the committed JSON Schema files: ``python -m schemas.export [--check]``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel

from schemas.events import RunEvent
from schemas.learning import PatternFile
from schemas.ledger import LedgerEntry
from schemas.notify import Notification
from schemas.patch import PatchArtifact
from schemas.review import ReviewDecision
from schemas.run import RunRecord
from schemas.spec import PhaseSpec

SCHEMA_DIR = Path(__file__).parent

#: file name → model. Each file is the contract for one kind of document.
EXPORTED: dict[str, type[BaseModel]] = {
    "phase_spec.v1.json": PhaseSpec,
    "run_record.v1.json": RunRecord,
    "patch_artifact.v1.json": PatchArtifact,
    "patch_ledger_entry.v1.json": LedgerEntry,
    "run_event.v1.json": RunEvent,
    "review_decision.v1.json": ReviewDecision,
    "recovery_pattern.v1.json": PatternFile,
    "notification.v1.json": Notification,
}


def render(model: type[BaseModel], name: str) -> str:
    schema = model.model_json_schema(mode="validation")
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://uet.dev/schemas/{name}",
        **schema,
    }
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    check = "--check" in (argv if argv is not None else sys.argv[1:])
    stale = []
    for name, model in EXPORTED.items():
        path = SCHEMA_DIR / name
        text = render(model, name)
        if path.exists() and path.read_text("utf-8") == text:
            continue
        stale.append(name)
        if not check:
            path.write_text(text, "utf-8")
    if check and stale:
        print(f"stale schema files: {', '.join(stale)}; run: python -m schemas.export")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
