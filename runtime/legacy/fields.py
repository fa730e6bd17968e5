"""How each legacy field maps: the execution request, file scope, gates, circuit breaker.
A mapper notes what it cannot carry over instead of failing."""

from __future__ import annotations

from typing import Any

from runtime.legacy.model import (
    GATE_KINDS,
    TOOL_ALIASES,
    Kind,
    PathRebaser,
    Unmapped,
    as_seconds,
    clean_glob,
    fresh_id,
    is_identifier,
    json_at,
    known_tools,
    normalize_id,
    strings,
)
from schemas.spec import KNOWN_TOOLS


class FieldMapper:
    def __init__(self, rebase_path: PathRebaser) -> None:
        self.rebase_path = rebase_path
        self.unmapped: list[Unmapped] = []

    def note(self, source: str, path: str, value: Any, why: str, kind: Kind = "unmapped") -> None:
        self.unmapped.append(Unmapped(source, path, value, why, kind))

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
                        json_at(at, "tool"),
                        raw,
                        f"uet has no tool {tool!r} (it knows "
                        f"{', '.join(known_tools())}); kept as tool_id, so validation reports it",
                        "kept",
                    )
                request["tool_id"] = tool
            else:
                self.note(src, json_at(at, "tool"), raw, "not a tool name")
        elif command_key is not None:
            request["tool_id"] = "shell"
        elif "patch_file" in data:
            request["tool_id"] = "patch"

        if command_key is not None:
            for extra in ("command", "cmd"):
                if extra in data and extra != command_key:
                    self.note(
                        src,
                        json_at(at, extra),
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
                    json_at(at, command_key),
                    command,
                    "not a command (a non-empty string, or a list of strings: argv)",
                )

        if "patch_file" in data:
            patch = data["patch_file"]
            if isinstance(patch, str) and patch.strip():
                request["patch_file"] = self.rebase_path(src, patch)
            else:
                self.note(src, json_at(at, "patch_file"), patch, "not a file path")

        if "model" in data:
            if isinstance(data["model"], str) and data["model"].strip():
                request["model"] = data["model"]
            else:
                self.note(src, json_at(at, "model"), data["model"], "not a model name")

        if "env" in data:
            env = data["env"]
            if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
                if env:
                    request["env"] = {str(k): v for k, v in env.items()}
            else:
                self.note(
                    src, json_at(at, "env"), env, "not an object of string values (quote numbers)"
                )

        if "tasks" in data:
            tasks = data["tasks"]
            lines = strings(tasks)
            lines = [t.strip() for t in lines if t.strip()] if lines is not None else None
            if lines is None:
                self.note(src, json_at(at, "tasks"), tasks, "not a string or a list of strings")
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
                patterns = strings(globs)
                if target is None:
                    self.note(
                        src, json_at(at, key), globs, "files_scope takes include and exclude only"
                    )
                elif patterns is None:
                    self.note(src, json_at(at, key), globs, "not a list of path globs")
                else:
                    target += [clean_glob(p) for p in patterns]
        else:
            patterns = strings(value)
            if patterns is None:
                self.note(
                    src,
                    at,
                    value,
                    'not a list of path globs or {"include": [...], "exclude": [...]}',
                )
            else:
                allowed = [clean_glob(p) for p in patterns]
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
            entries = [(json_at(at, j), v) for j, v in enumerate(value)]
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
                self.note(src, json_at(at, name_key), name, "not a test name; named by position")
        kind_key = next((k for k in ("type", "kind") if k in test), None)
        kind = "unit"
        if kind_key is not None:
            raw_kind = test[kind_key]
            mapped = GATE_KINDS.get(raw_kind.strip().lower()) if isinstance(raw_kind, str) else None
            if mapped is None:
                self.note(
                    src,
                    json_at(at, kind_key),
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
                json_at(at, command_key or "command"),
                command,
                "a test needs a command; this test was left out",
            )
            return None
        timeout_key = next((k for k in ("timeout", "timeout_seconds") if k in test), None)
        if timeout_key is not None:
            seconds = as_seconds(test[timeout_key])
            if seconds is None:
                self.note(
                    src,
                    json_at(at, timeout_key),
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
                self.note(src, json_at(at, key), value, why)
        return gate

    def unique_gate_ids(self, gates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        taken: set[str] = set()
        for gate in gates:
            gate["gate_id"] = fresh_id(gate["gate_id"], taken)
        return gates

    def resilience(self, src: str, at: str, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.note(src, at, value, "not an object")
            return {}
        policy: dict[str, Any] = {}
        targets = {
            "max_failures": "max_attempts",
            "max_attempts": "max_attempts",
            "timeout": "timeout_s",
            "timeout_seconds": "timeout_s",
            "max_fixes": "max_fix_attempts",
            "fix_attempts": "max_fix_attempts",
        }
        for key, raw in value.items():
            where = json_at(at, key)
            target = targets.get(key)
            if target is None:
                if key in ("cooldown", "cooldown_s", "cooldown_seconds"):
                    why = (
                        "uet's per-tool breaker is phase-wide: set router.circuit_breaker."
                        "cooldown_s in the phase if you need it"
                    )
                else:
                    why = "no resilience setting in uet (max_attempts, timeout_s, max_fix_attempts)"
                self.note(src, where, raw, why)
            elif target in policy:
                self.note(src, where, raw, f"{target} already set by another field")
            elif target == "timeout_s":
                seconds = as_seconds(raw)
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
