"""The conversion as a whole: bundles → workstreams with settled ids and dependencies, the
phase id and title, and every note in file order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from runtime.legacy.fields import FieldMapper
from runtime.legacy.model import (
    DEFAULT_PHASE_ID,
    Conversion,
    LegacyFormatError,
    PathRebaser,
    fresh_id,
    is_identifier,
    is_number,
    item_index,
    json_at,
    normalize_id,
    whole,
)


@dataclass
class _Item:
    """One legacy workstream object, before ids are settled."""

    source: str
    path: str
    data: dict[str, Any]


@dataclass(frozen=True)
class _Named:
    """A phase id or title and the bundle field it came from."""

    value: str
    source: str
    key: str


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# Workstream keys that are read directly (the rest are reported).
_WS_KEYS = frozenset(
    {
        "id",
        "title",
        "name",
        "tool",
        "command",
        "cmd",
        "patch_file",
        "model",
        "env",
        "tasks",
        "files_scope",
        "acceptance_tests",
        "depends_on",
        "circuit_breaker",
        "estimated_minutes",
    }
)

_WHY: dict[str, str] = {
    "priority": "uet has no priorities: dependencies decide the order (waves), max_parallel the "
    "concurrency",
    "description": "a workstream has only a title; put what the tool needs in tasks",
    "owner": "uet does not track owners; reviewers are the phase's allowed_reviewers",
    "assignee": "uet does not track assignees; reviewers are the phase's allowed_reviewers",
    "reviewer": "reviewers are the phase's allowed_reviewers (a workstream asks for review "
    "with review: always)",
    "reviewers": "reviewers are the phase's allowed_reviewers (a workstream asks for review "
    "with review: always)",
    "status": "status is run state, not part of a phase spec",
}


class Converter(FieldMapper):
    def __init__(self, rebase_path: PathRebaser) -> None:
        super().__init__(rebase_path)
        self.named: dict[str, _Named] = {}  # "phase_id" / "title" → where it came from

    # -- whole run ---------------------------------------------------------------------------

    def run(
        self, bundles: list[tuple[str, Any]], phase_id: str | None, title: str | None
    ) -> Conversion:
        items: list[_Item] = []
        gates: list[dict[str, Any]] = []
        for source, data in bundles:
            items += self.items(source, data)
            if isinstance(data, dict) and "workstreams" in data:
                gates += self.phase_fields(source, data, phase_id, title)

        out: dict[str, Any] = {"phase_id": self.phase_id(phase_id)}
        named_title = self.named.get("title")
        final_title = title if title is not None else named_title.value if named_title else ""
        if final_title:
            out["title"] = final_title
        if gates:
            out["gates"] = self.unique_gate_ids(gates)

        id_map, new_ids = self.settle_ids(items)
        out["workstreams"] = [
            self.workstream(item, new_id, id_map, set(new_ids))
            for item, new_id in zip(items, new_ids, strict=True)
        ]
        order = {source: n for n, (source, _) in enumerate(bundles)}
        notes = sorted(
            enumerate(self.unmapped),
            key=lambda e: (order.get(e[1].source, len(order)), item_index(e[1].json_path), e[0]),
        )
        renamed = {
            str(item.data.get("id")): new
            for item, new in zip(items, new_ids, strict=True)
            if "id" in item.data and str(item.data["id"]) != new
        }
        return Conversion(
            phase=out,
            unmapped=[note for _, note in notes],
            origins=[f"{item.source} {item.path}" for item in items],
            renamed_ids=renamed,
        )

    def items(self, source: str, data: Any) -> Iterable[_Item]:
        if isinstance(data, dict) and "workstreams" in data:
            streams, base = data["workstreams"], "$.workstreams"
            if not isinstance(streams, list):
                raise LegacyFormatError(
                    f"{source}: $.workstreams: expected a list of workstream objects, "
                    f"got {type(streams).__name__}"
                )
        elif isinstance(data, dict):
            yield _Item(source, "$", data)
            return
        elif isinstance(data, list):
            streams, base = data, "$"
        else:
            raise LegacyFormatError(
                f"{source}: $: a legacy file is a workstream object, a list of them, or "
                f'{{"workstreams": [...]}}; got {type(data).__name__}'
            )
        for i, ws in enumerate(streams):
            if isinstance(ws, dict):
                yield _Item(source, json_at(base, i), ws)
            else:
                self.note(source, json_at(base, i), ws, "not a workstream object; skipped")

    # -- phase level -------------------------------------------------------------------------

    def phase_fields(
        self,
        source: str,
        data: dict[str, Any],
        explicit_id: str | None,
        explicit_title: str | None,
    ) -> list[dict[str, Any]]:
        """Take the phase id and title from one bundle (the first bundle to name them wins);
        returns the bundle's phase gates."""
        used: set[str] = set()
        reasons: dict[str, str] = {}
        slots = (
            ("phase_id", ("phase_id", "name"), explicit_id),
            ("title", ("title", "name", "description"), explicit_title),
        )
        for slot, keys, explicit in slots:
            key = next((k for k in keys if _text(data.get(k))), None)
            if key is None:
                continue
            label = slot.replace("_", " ")
            earlier = self.named.get(slot)
            if explicit is not None:
                reasons.setdefault(key, f"replaced by the {label} given to uet convert")
            elif earlier is not None and earlier.value != data[key]:
                reasons.setdefault(
                    key, f"the phase's {label} was already taken from {earlier.source}"
                )
            else:
                used.add(key)
                self.named.setdefault(slot, _Named(data[key], source, key))
        gates: list[dict[str, Any]] = []
        for key, value in data.items():
            if key == "workstreams" or key in used:
                continue
            if key == "acceptance_tests":
                gates = self.gates(source, "$.acceptance_tests", value)
            elif key in reasons:
                self.note(source, f"$.{key}", value, reasons[key])
            elif key in ("phase_id", "name", "title", "description"):
                if not _text(value):
                    why = "not a non-empty string"
                else:
                    taken = " and ".join(sorted(used)) or "elsewhere"
                    why = f"a phase has one id and one title; they were taken from {taken}"
                self.note(source, f"$.{key}", value, why)
            else:
                self.note(source, f"$.{key}", value, _WHY.get(key, "no phase-level field in uet"))
        return gates

    def phase_id(self, explicit: str | None) -> str:
        if explicit is not None:
            return explicit  # the caller's own choice: validation judges it
        named = self.named.get("phase_id")
        if named is None:
            return DEFAULT_PHASE_ID
        if is_identifier(named.value):
            return named.value
        new = normalize_id(named.value) or DEFAULT_PHASE_ID
        self.note(
            named.source,
            f"$.{named.key}",
            named.value,
            f"not a valid uet id; the phase id is {new!r}",
            "renamed",
        )
        return new

    # -- ids ---------------------------------------------------------------------------------

    def settle_ids(self, items: list[_Item]) -> tuple[dict[str, str], list[str]]:
        """Each item's uet id, and legacy id → uet id. Valid ids stay; the others are
        normalized without colliding with any other id."""
        taken = {
            str(item.data["id"])
            for item in items
            if isinstance(item.data.get("id"), str | int)
            and not isinstance(item.data.get("id"), bool)
            and is_identifier(str(item.data["id"]))
        }
        id_map: dict[str, str] = {}
        new_ids: list[str] = []
        for n, item in enumerate(items, start=1):
            raw = item.data.get("id")
            where = json_at(item.path, "id")
            if isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw).strip():
                legacy = str(raw)
                if is_identifier(legacy):
                    new = legacy
                else:
                    new = fresh_id(normalize_id(legacy) or f"ws-{n}", taken)
                    self.note(
                        item.source,
                        where,
                        raw,
                        f"not a valid uet id; renamed to {new!r} (dependencies on it too)",
                        "renamed",
                    )
                id_map.setdefault(legacy, new)
            else:
                title = item.data.get("title") or item.data.get("name")
                base = normalize_id(title) if isinstance(title, str) else ""
                new = fresh_id(base or f"ws-{n}", taken)
                if raw is None:
                    self.note(item.source, item.path, None, f"no id; named {new!r}", "renamed")
                else:
                    self.note(item.source, where, raw, f"not a usable id; named {new!r}", "renamed")
            new_ids.append(new)
        return id_map, new_ids

    # -- one workstream ----------------------------------------------------------------------

    def workstream(
        self, item: _Item, new_id: str, id_map: dict[str, str], new_ids: set[str]
    ) -> dict[str, Any]:
        src, data, at = item.source, item.data, item.path
        ws: dict[str, Any] = {"workstream_id": new_id}

        title_keys = [k for k in ("title", "name") if _text(data.get(k))]
        if title_keys:
            ws["title"] = data[title_keys[0]]
            for other in title_keys[1:]:
                if data[other] != ws["title"]:
                    self.note(
                        src,
                        json_at(at, other),
                        data[other],
                        "a workstream has one title (taken from title)",
                    )
        for key in ("title", "name"):
            if key in data and key not in title_keys:
                self.note(src, json_at(at, key), data[key], "not a non-empty string")

        if "depends_on" in data:
            deps = self.dependencies(
                src, json_at(at, "depends_on"), data["depends_on"], id_map, new_ids
            )
            if deps:
                ws["dependencies"] = deps

        request = self.execution_request(src, at, data)
        if request:
            ws["execution_request"] = request

        if "files_scope" in data:
            scope = self.file_scope(src, json_at(at, "files_scope"), data["files_scope"])
            if scope:
                ws["constraints"] = {"file_scope": scope}

        if "acceptance_tests" in data:
            gates = self.gates(src, json_at(at, "acceptance_tests"), data["acceptance_tests"])
            if gates:
                ws["acceptance_criteria"] = {"gates": self.unique_gate_ids(gates)}

        if "circuit_breaker" in data:
            policy = self.resilience(src, json_at(at, "circuit_breaker"), data["circuit_breaker"])
            if policy:
                ws["resilience_policy"] = policy

        if "estimated_minutes" in data:
            minutes = data["estimated_minutes"]
            if is_number(minutes) and minutes > 0:
                ws["estimated_duration_s"] = whole(minutes * 60)
            else:
                why = "not a positive number of minutes"
                self.note(src, json_at(at, "estimated_minutes"), minutes, why)

        for key, value in data.items():
            if key not in _WS_KEYS:
                why = _WHY.get(key, "no workstream field in uet")
                self.note(src, json_at(at, key), value, why)
        return ws

    def dependencies(
        self, src: str, at: str, value: Any, id_map: dict[str, str], new_ids: set[str]
    ) -> list[str]:
        if isinstance(value, str | int) and not isinstance(value, bool):
            entries: list[tuple[str, Any]] = [(at, value)]
        elif isinstance(value, list):
            entries = [(json_at(at, j), v) for j, v in enumerate(value)]
        else:
            self.note(src, at, value, "not a list of workstream ids")
            return []
        deps: list[str] = []
        for where, dep in entries:
            if not isinstance(dep, str | int) or isinstance(dep, bool):
                self.note(src, where, dep, "not a workstream id")
                continue
            legacy = str(dep)
            if legacy in id_map:
                new = id_map[legacy]
            elif normalize_id(legacy) in new_ids:
                new = normalize_id(legacy)
                self.note(
                    src, where, dep, f"no workstream has this id; taken as {new!r}", "renamed"
                )
            else:
                new = legacy  # kept: validation names the unknown dependency
            deps.append(new)
        return deps


def convert(
    bundles: list[tuple[str, Any]],
    phase_id: str | None = None,
    title: str | None = None,
    *,
    rebase_path: PathRebaser | None = None,
) -> Conversion:
    """Map legacy bundles ``(source name, parsed JSON)`` to one phase spec.

    ``phase_id`` and ``title`` win over the bundles' own; without either, the first bundle that
    names the phase decides, else :data:`DEFAULT_PHASE_ID`. Raises :class:`LegacyFormatError`
    for a file that is not a workstream object, a list of them, or a bundle.
    """
    return Converter(rebase_path or (lambda _source, path: path)).run(bundles, phase_id, title)
