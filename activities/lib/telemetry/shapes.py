"""A workstream's shape: what makes two workstreams of different runs "the same kind of
work" (tool, task kind, gate set, scope shape), for the template detector, the suggester and
learned durations."""

from __future__ import annotations

import hashlib
import json
import re

from activities.lib.telemetry.recorder import WorkstreamShapeFact, now
from schemas.spec import WorkstreamSpec

_GLOB = re.compile(r"[*?\[]")


def gate_set(ws: WorkstreamSpec) -> str:
    """The gates' ids and commands, order-free, as a short hash."""
    gates = sorted(
        (g.gate_id, g.command if isinstance(g.command, str) else " ".join(g.command))
        for g in ws.acceptance_criteria.gates
    )
    return hashlib.sha256(json.dumps(gates).encode()).hexdigest()[:16]


def scope_shape(paths: list[str]) -> str:
    """Each allowed path with its literal segments after the first replaced by ``<>``:
    ``src/auth/**`` and ``src/billing/**`` have one shape, ``src/<>/**``."""
    shapes = []
    for path in sorted(paths):
        parts = path.split("/")
        kept = [parts[0]] + [p if _GLOB.search(p) else "<>" for p in parts[1:]]
        shapes.append("/".join(kept))
    return ",".join(sorted(set(shapes)))[:400]


def shape_fact(run_id: str, phase_id: str, ws: WorkstreamSpec) -> WorkstreamShapeFact:
    spec = ws.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    # retry_flaky is filled in from the phase's defaults: not the workstream's own shape.
    for gate in (spec.get("acceptance_criteria") or {}).get("gates") or []:
        gate.pop("retry_flaky", None)
    text = json.dumps(spec)
    if len(text) > 20_000:  # a shape, not a copy: an enormous prompt is cut
        prompt = (spec.get("execution_request") or {}).get("prompt")
        if isinstance(prompt, str):
            spec["execution_request"]["prompt"] = prompt[:4000]
    return WorkstreamShapeFact(
        key=f"shape/{run_id}/{ws.workstream_id}",
        run_id=run_id,
        phase_id=phase_id,
        workstream_id=ws.workstream_id,
        template=ws.template,
        tool_id=ws.execution_request.tool_id,
        task_kind=ws.task_kind,
        gate_set=gate_set(ws),
        scope_shape=scope_shape(ws.constraints.file_scope.allowed_paths),
        spec=spec,
        estimated_duration_s=ws.estimated_duration_s,
        at=now(),
    )
