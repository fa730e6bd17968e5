"""Legacy UET workstream files → a uet phase spec. Pure: no I/O, no clock.

``runtime/convert.py`` reads the files and writes the YAML; this module only maps data, so the
mapping can be tested (and reused) without touching a disk.

The legacy format
=================

A legacy file (JSON) holds one of:

* one workstream object: ``{"id": "ws-a", "tool": "shell", "command": "…", …}``
* a list of workstream objects: ``[{…}, {…}]``
* a bundle: ``{"phase_id": …, "name": …, "title": …, "description": …,
  "acceptance_tests": […], "workstreams": [{…}, …]}`` (every key but ``workstreams`` optional)

Bundle (phase-level) fields:

==================== =========================================================================
``phase_id``         ``phase_id`` (normalized when it is not a valid uet identifier)
``name``             ``phase_id`` when there is no ``phase_id``; ``title`` when there is no
                     ``title``
``title``            ``title``
``description``      ``title`` when there is neither ``title`` nor ``name``
``acceptance_tests`` ``gates`` (phase gates, same forms as a workstream's)
==================== =========================================================================

Workstream fields:

==================== =========================================================================
``id``               ``workstream_id``; ids that are not valid uet identifiers
                     (``^[A-Za-z0-9][A-Za-z0-9._-]*$``, usable in a git ref) are normalized:
                     lowercase, whitespace → ``-``, other invalid characters dropped
``title``, ``name``  ``title``
``tool``             ``execution_request.tool_id``: ``aider``; ``claude``/``claude-code``/
                     ``claude_code`` → ``claude``; ``codex``; ``shell``/``sh``/``bash``/``cmd`` →
                     ``shell``; ``patch``. Others are kept as written (and reported).
                     Without ``tool``: ``shell`` when there is a ``command``, ``patch`` when
                     there is a ``patch_file``.
``command``, ``cmd`` ``execution_request.command`` (a string runs under ``/bin/sh -c``; for the
                     legacy ``bash`` tool a string becomes ``["bash", "-c", command]``)
``patch_file``       ``execution_request.patch_file`` (relative to the legacy file; the caller
                     rebases it onto the output file with ``rebase_path``)
``model``            ``execution_request.model``
``env``              ``execution_request.env`` (an object of strings)
``tasks``            ``execution_request.prompt``: a string, or a list of strings that becomes
                     one numbered list
``files_scope``      ``constraints.file_scope``: a list of globs → ``allowed_paths``; or
                     ``{"include": […], "exclude": […]}`` → ``allowed_paths``/``forbidden_paths``
``acceptance_tests`` ``acceptance_criteria.gates``: a list of command strings → gates
                     ``{gate_id: test-N, kind: unit, command}``; or a list of objects
                     ``{name|id, command|cmd, type|kind, timeout|timeout_seconds}``
``depends_on``       ``dependencies`` (rewritten when the ids they name were normalized)
``circuit_breaker``  ``resilience_policy``: ``max_failures``/``max_attempts`` → ``max_attempts``,
                     ``timeout``/``timeout_seconds`` → ``timeout_s`` (seconds, or ``"90s"``,
                     ``"5m"``, ``"1h"``), ``max_fixes``/``fix_attempts`` → ``max_fix_attempts``
``estimated_minutes`` ``estimated_duration_s`` (times 60)
==================== =========================================================================

Everything else (``priority``, ``owner``, …) has no place in a phase spec and is reported as an
:class:`Unmapped` entry with the reason, as are renamed ids and tools uet does not know. The
spec holds only what the legacy files said (defaults are left out), so it stays readable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.spec import KNOWN_TOOLS

#: Legacy tool names → uet tool ids.
TOOL_ALIASES: dict[str, str] = {
    "aider": "aider",
    "claude": "claude",
    "claude-code": "claude",
    "claude_code": "claude",
    "codex": "codex",
    "shell": "shell",
    "sh": "shell",
    "bash": "shell",
    "cmd": "shell",
    "patch": "patch",
}

#: Legacy test types → uet gate kinds.
GATE_KINDS: dict[str, str] = {
    **dict.fromkeys(["unit", "unittest", "unit-test", "test", "tests", "pytest"], "unit"),
    **dict.fromkeys(["lint", "linter", "style", "format", "typecheck", "types"], "lint"),
    **dict.fromkeys(["integration", "e2e", "end-to-end", "smoke", "system"], "integration"),
    **dict.fromkeys(["security", "sast", "audit"], "security"),
    "custom": "custom",
}

#: Used when neither the caller nor any bundle names the phase.
DEFAULT_PHASE_ID = "PH-LEGACY"

_IDENTIFIER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_BAD_REF_PART = re.compile(r"\.\.|\.lock$|\.$|@\{")  # as schemas/spec_check.py refuses
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|m|min|mins|h|hr|hrs)?\s*$")
_DURATION_UNITS = {"s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60,
                   "h": 3600, "hr": 3600, "hrs": 3600}  # fmt: skip

Kind = Literal["unmapped", "renamed", "kept"]
#: ``rebase_path(source, patch_file)`` → the patch_file as the converted spec should name it.
PathRebaser = Callable[[str, str], str]


@dataclass(frozen=True)
class Unmapped:
    """A legacy field the conversion could not carry over as it was.

    ``kind``: ``unmapped`` (no place in uet; dropped), ``renamed`` (an id was normalized),
    ``kept`` (carried over as written although uet may refuse it, e.g. an unknown tool).
    """

    source: str
    json_path: str
    value: Any
    why: str
    kind: Kind = "unmapped"

    def line(self) -> str:
        """``file: $.path: value — why``, one line."""
        return f"{self.source}: {self.json_path}: {short_json(self.value)} — {self.why}"


@dataclass(frozen=True)
class Conversion:
    """The phase spec (a plain dict, ready for YAML) and what did not map."""

    phase: dict[str, Any]
    unmapped: list[Unmapped] = field(default_factory=list)
    #: Per workstream, in order: where it came from (``source $.path``).
    origins: list[str] = field(default_factory=list)
    #: Legacy workstream id → uet workstream id, for the ids that changed.
    renamed_ids: dict[str, str] = field(default_factory=dict)


class LegacyFormatError(ValueError):
    """A file whose overall shape is not one of the legacy forms (nothing in it can map)."""


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
    return _Converter(rebase_path or (lambda _source, path: path)).run(bundles, phase_id, title)


# -- helpers ---------------------------------------------------------------------------------


def is_identifier(value: str) -> bool:
    """Whether uet accepts ``value`` as a workstream, gate or phase id."""
    return bool(_IDENTIFIER.match(value)) and len(value) <= 100 and not _BAD_REF_PART.search(value)


def normalize_id(value: str) -> str:
    """Lowercase, whitespace → '-', invalid characters dropped; '' when nothing is left."""
    text = re.sub(r"\s+", "-", value.strip().lower())
    text = re.sub(r"[^a-z0-9._-]", "", text)
    text = re.sub(r"\.{2,}", ".", text)
    text = re.sub(r"-{2,}", "-", text)
    text = text.lstrip("._-")[:100].rstrip(".")
    if text.endswith(".lock"):
        text = text[: -len(".lock")] + "-lock"
    return text


def short_json(value: Any, limit: int = 80) -> str:
    """``value`` as compact JSON on one line, cut to ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(base: str, key: str | int) -> str:
    return f"{base}[{key}]" if isinstance(key, int) else f"{base}.{key}"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _strings(value: Any) -> list[str] | None:
    """A string or a list of strings as a list; None for anything else."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


# -- the converter ---------------------------------------------------------------------------


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
_WS_KEYS = frozenset({
    "id", "title", "name", "tool", "command", "cmd", "patch_file", "model", "env", "tasks",
    "files_scope", "acceptance_tests", "depends_on", "circuit_breaker", "estimated_minutes",
})  # fmt: skip

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


class _Converter:
    def __init__(self, rebase_path: PathRebaser) -> None:
        self.rebase_path = rebase_path
        self.unmapped: list[Unmapped] = []
        self.named: dict[str, _Named] = {}  # "phase_id" / "title" → where it came from

    def note(self, source: str, path: str, value: Any, why: str, kind: Kind = "unmapped") -> None:
        self.unmapped.append(Unmapped(source, path, value, why, kind))

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
            key=lambda e: (order.get(e[1].source, len(order)), _item_index(e[1].json_path), e[0]),
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
                yield _Item(source, _path(base, i), ws)
            else:
                self.note(source, _path(base, i), ws, "not a workstream object; skipped")

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
            where = _path(item.path, "id")
            if isinstance(raw, str | int) and not isinstance(raw, bool) and str(raw).strip():
                legacy = str(raw)
                if is_identifier(legacy):
                    new = legacy
                else:
                    new = self.fresh(normalize_id(legacy) or f"ws-{n}", taken)
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
                new = self.fresh(base or f"ws-{n}", taken)
                if raw is None:
                    self.note(item.source, item.path, None, f"no id; named {new!r}", "renamed")
                else:
                    self.note(item.source, where, raw, f"not a usable id; named {new!r}", "renamed")
            new_ids.append(new)
        return id_map, new_ids

    @staticmethod
    def fresh(base: str, taken: set[str]) -> str:
        new, n = base, 2
        while new in taken:
            suffix = f"-{n}"
            new, n = base[: 100 - len(suffix)] + suffix, n + 1
        taken.add(new)
        return new

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
                        _path(at, other),
                        data[other],
                        "a workstream has one title (taken from title)",
                    )
        for key in ("title", "name"):
            if key in data and key not in title_keys:
                self.note(src, _path(at, key), data[key], "not a non-empty string")

        if "depends_on" in data:
            deps = self.dependencies(
                src, _path(at, "depends_on"), data["depends_on"], id_map, new_ids
            )
            if deps:
                ws["dependencies"] = deps

        request = self.execution_request(src, at, data)
        if request:
            ws["execution_request"] = request

        if "files_scope" in data:
            scope = self.file_scope(src, _path(at, "files_scope"), data["files_scope"])
            if scope:
                ws["constraints"] = {"file_scope": scope}

        if "acceptance_tests" in data:
            gates = self.gates(src, _path(at, "acceptance_tests"), data["acceptance_tests"])
            if gates:
                ws["acceptance_criteria"] = {"gates": self.unique_gate_ids(gates)}

        if "circuit_breaker" in data:
            policy = self.resilience(src, _path(at, "circuit_breaker"), data["circuit_breaker"])
            if policy:
                ws["resilience_policy"] = policy

        if "estimated_minutes" in data:
            minutes = data["estimated_minutes"]
            if _is_number(minutes) and minutes > 0:
                ws["estimated_duration_s"] = _whole(minutes * 60)
            else:
                self.note(
                    src, _path(at, "estimated_minutes"), minutes, "not a positive number of minutes"
                )

        for key, value in data.items():
            if key not in _WS_KEYS:
                why = _WHY.get(key, "no workstream field in uet")
                self.note(src, _path(at, key), value, why)
        return ws

    def dependencies(
        self, src: str, at: str, value: Any, id_map: dict[str, str], new_ids: set[str]
    ) -> list[str]:
        if isinstance(value, str | int) and not isinstance(value, bool):
            entries: list[tuple[str, Any]] = [(at, value)]
        elif isinstance(value, list):
            entries = [(_path(at, j), v) for j, v in enumerate(value)]
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

    def execution_request(self, src: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
        request: dict[str, Any] = {}
        legacy_tool: str | None = None
        command_key = next((k for k in ("command", "cmd") if k in data), None)
        if "tool" in data:
            raw = data["tool"]
            if isinstance(raw, str) and raw.strip():
                legacy_tool = raw.strip().lower()
                tool = TOOL_ALIASES.get(legacy_tool)
                if tool is None and raw.strip() in KNOWN_TOOLS:
                    tool = raw.strip()
                if tool is None:
                    tool = raw.strip()
                    self.note(
                        src,
                        _path(at, "tool"),
                        raw,
                        f"uet has no tool {tool!r} (it knows "
                        f"{', '.join(_known_tools())}); kept as tool_id, so validation reports it",
                        "kept",
                    )
                request["tool_id"] = tool
            else:
                self.note(src, _path(at, "tool"), raw, "not a tool name")
        elif command_key is not None:
            request["tool_id"] = "shell"
        elif "patch_file" in data:
            request["tool_id"] = "patch"

        if command_key is not None:
            for extra in ("command", "cmd"):
                if extra in data and extra != command_key:
                    self.note(
                        src,
                        _path(at, extra),
                        data[extra],
                        f"a workstream has one command (taken from {command_key})",
                    )
            command = data[command_key]
            if isinstance(command, str) and command.strip():
                request["command"] = ["bash", "-c", command] if legacy_tool == "bash" else command
            elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
                request["command"] = list(command)
            else:
                self.note(
                    src,
                    _path(at, command_key),
                    command,
                    "not a command (a non-empty string, or a list of strings: argv)",
                )

        if "patch_file" in data:
            patch = data["patch_file"]
            if isinstance(patch, str) and patch.strip():
                request["patch_file"] = self.rebase_path(src, patch)
            else:
                self.note(src, _path(at, "patch_file"), patch, "not a file path")

        if "model" in data:
            if isinstance(data["model"], str) and data["model"].strip():
                request["model"] = data["model"]
            else:
                self.note(src, _path(at, "model"), data["model"], "not a model name")

        if "env" in data:
            env = data["env"]
            if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
                if env:
                    request["env"] = {str(k): v for k, v in env.items()}
            else:
                self.note(
                    src, _path(at, "env"), env, "not an object of string values (quote numbers)"
                )

        if "tasks" in data:
            tasks = data["tasks"]
            lines = _strings(tasks)
            lines = [t.strip() for t in lines if t.strip()] if lines is not None else None
            if lines is None:
                self.note(src, _path(at, "tasks"), tasks, "not a string or a list of strings")
            elif len(lines) == 1:
                request["prompt"] = lines[0]
            elif lines:
                request["prompt"] = "\n".join(f"{n}. {t}" for n, t in enumerate(lines, 1))
        return request

    def file_scope(self, src: str, at: str, value: Any) -> dict[str, Any]:
        allowed: list[str] = []
        forbidden: list[str] = []
        if isinstance(value, dict):
            for key, globs in value.items():
                target = {"include": allowed, "exclude": forbidden}.get(key)
                patterns = _strings(globs)
                if target is None:
                    self.note(
                        src, _path(at, key), globs, "files_scope takes include and exclude only"
                    )
                elif patterns is None:
                    self.note(src, _path(at, key), globs, "not a list of path globs")
                else:
                    target += [_clean_glob(p) for p in patterns]
        else:
            patterns = _strings(value)
            if patterns is None:
                self.note(
                    src,
                    at,
                    value,
                    'not a list of path globs or {"include": [...], "exclude": [...]}',
                )
            else:
                allowed = [_clean_glob(p) for p in patterns]
        scope: dict[str, Any] = {}
        if allowed:
            scope["allowed_paths"] = allowed
        if forbidden:
            scope["forbidden_paths"] = forbidden
        return scope

    def gates(self, src: str, at: str, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, str | dict):
            entries: list[tuple[str, Any]] = [(at, value)]
        elif isinstance(value, list):
            entries = [(_path(at, j), v) for j, v in enumerate(value)]
        else:
            self.note(src, at, value, "not a list of test commands or test objects")
            return []
        gates: list[dict[str, Any]] = []
        for n, (where, test) in enumerate(entries, start=1):
            if isinstance(test, str):
                if test.strip():
                    gates.append({"gate_id": f"test-{n}", "kind": "unit", "command": test})
                else:
                    self.note(src, where, test, "an empty test command")
            elif isinstance(test, dict):
                gate = self.gate(src, where, n, test)
                if gate:
                    gates.append(gate)
            else:
                self.note(src, where, test, "not a test command or a test object")
        return gates

    def gate(self, src: str, at: str, n: int, test: dict[str, Any]) -> dict[str, Any] | None:
        gate: dict[str, Any] = {"gate_id": f"test-{n}"}
        known = {"name", "id", "command", "cmd", "type", "kind", "timeout", "timeout_seconds"}
        name_key = next((k for k in ("name", "id") if k in test), None)
        if name_key is not None:
            name = test[name_key]
            if isinstance(name, str | int) and not isinstance(name, bool) and str(name).strip():
                text = str(name)
                gate["gate_id"] = (
                    text if is_identifier(text) else normalize_id(text) or gate["gate_id"]
                )
            else:
                self.note(src, _path(at, name_key), name, "not a test name; named by position")
        kind_key = next((k for k in ("type", "kind") if k in test), None)
        kind = "unit"
        if kind_key is not None:
            raw_kind = test[kind_key]
            mapped = GATE_KINDS.get(raw_kind.strip().lower()) if isinstance(raw_kind, str) else None
            if mapped is None:
                self.note(
                    src,
                    _path(at, kind_key),
                    raw_kind,
                    f"no such gate kind in uet ({', '.join(sorted(set(GATE_KINDS.values())))}); "
                    "the gate is 'custom'",
                )
                mapped = "custom"
            kind = mapped
        gate["kind"] = kind
        command_key = next((k for k in ("command", "cmd") if k in test), None)
        command = test.get(command_key) if command_key else None
        if isinstance(command, str) and command.strip():
            gate["command"] = command
        elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
            gate["command"] = list(command)
        else:
            self.note(
                src,
                _path(at, command_key or "command"),
                command,
                "a test needs a command; this test was left out",
            )
            return None
        timeout_key = next((k for k in ("timeout", "timeout_seconds") if k in test), None)
        if timeout_key is not None:
            seconds = _seconds(test[timeout_key])
            if seconds is None:
                self.note(
                    src,
                    _path(at, timeout_key),
                    test[timeout_key],
                    "not a positive duration (seconds, or like '90s', '5m')",
                )
            else:
                gate["timeout_s"] = seconds
        for key, value in test.items():
            if key not in (name_key, kind_key, command_key, timeout_key):
                if key in known:
                    why = "the same setting is already given by another key of this test"
                else:
                    why = "no gate field in uet (a gate has a name, kind, command and timeout)"
                self.note(src, _path(at, key), value, why)
        return gate

    def unique_gate_ids(self, gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken: set[str] = set()
        for gate in gates:
            gate["gate_id"] = self.fresh(gate["gate_id"], taken)
        return gates

    def resilience(self, src: str, at: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.note(src, at, value, "not an object")
            return {}
        policy: dict[str, Any] = {}
        targets = {
            "max_failures": "max_attempts", "max_attempts": "max_attempts",
            "timeout": "timeout_s", "timeout_seconds": "timeout_s",
            "max_fixes": "max_fix_attempts", "fix_attempts": "max_fix_attempts",
        }  # fmt: skip
        for key, raw in value.items():
            where = _path(at, key)
            target = targets.get(key)
            if target is None:
                if key in ("cooldown", "cooldown_s", "cooldown_seconds"):
                    why = ("uet's per-tool breaker is phase-wide: set router.circuit_breaker."
                           "cooldown_s in the phase if you need it")  # fmt: skip
                else:
                    why = "no resilience setting in uet (max_attempts, timeout_s, max_fix_attempts)"
                self.note(src, where, raw, why)
            elif target in policy:
                self.note(src, where, raw, f"{target} already set by another field")
            elif target == "timeout_s":
                seconds = _seconds(raw)
                if seconds is None:
                    self.note(
                        src, where, raw, "not a positive duration (seconds, or like '90s', '5m')"
                    )
                else:
                    policy[target] = seconds
            else:
                least = 1 if target == "max_attempts" else 0
                if isinstance(raw, int) and not isinstance(raw, bool) and raw >= least:
                    policy[target] = raw
                else:
                    self.note(src, where, raw, f"not a whole number ≥ {least}")
        order = ("max_attempts", "max_fix_attempts", "timeout_s")
        return {k: policy[k] for k in order if k in policy}


_ITEM_INDEX = re.compile(r"^\$(?:\.workstreams)?\[(\d+)\]")


def _item_index(json_path: str) -> int:
    """Which workstream of its file a note is about (-1: the file or the phase itself)."""
    match = _ITEM_INDEX.match(json_path)
    return int(match.group(1)) if match else -1


def _known_tools() -> list[str]:
    return sorted(set(TOOL_ALIASES.values()) | set(KNOWN_TOOLS))


def _seconds(value: Any) -> int | float | None:
    if _is_number(value):
        return _whole(value) if value > 0 else None
    if isinstance(value, str):
        match = _DURATION.match(value.lower())
        if match:
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"]
            return _whole(seconds) if seconds > 0 else None
    return None


def _clean_glob(pattern: str) -> str:
    """``./src/**`` and ``src/**`` mean the same; uet scopes are written without ``./``."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern
