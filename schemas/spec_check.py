"""Every problem in a phase spec, each located by its JSON path.

Two layers: the committed JSON Schema (types, required and unknown fields) and the semantic
rules a schema cannot say (ids, dependencies, cycles, tools, gate order, path scopes).
Pure functions: the CLI and the planner both call them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import networkx as nx
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ValidationError

from schemas.spec import (
    AI_TOOLS,
    KNOWN_TOOLS,
    NOT_IN_TEMPLATES,
    Constraints,
    ExecutionRequest,
    GateExpect,
    GateSpec,
    PatchPolicy,
    PhaseSpec,
    ResiliencePolicy,
    WorkstreamSpec,
    placeholders,
)

PathPart = str | int


@dataclass(frozen=True)
class Problem:
    path: tuple[PathPart, ...]
    message: str
    key: str | None = None  # an unknown field: the key itself (a file line points at it)

    @property
    def json_path(self) -> str:
        return json_path(self.path)


@dataclass(frozen=True)
class SpecCheck:
    spec: PhaseSpec | None
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return self.spec is not None and not self.problems


def json_path(path: Iterable[PathPart]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


@cache
def phase_json_schema() -> dict[str, Any]:
    text = resources.files("schemas").joinpath("phase_spec.v1.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def check_spec(data: Any) -> SpecCheck:
    """All problems with ``data`` (a parsed phase file); the spec when there are none."""
    problems = _schema_problems(data) + template_problems(data)
    if problems:
        return SpecCheck(None, sorted(problems, key=lambda p: (p.json_path, p.message)))
    try:
        spec = PhaseSpec.model_validate(data)
    except ValidationError as exc:
        # Defaults and templates are merged before validation: errors can surface only here.
        found = [Problem(_loc(e["loc"]), e["msg"]) for e in exc.errors()]
        return SpecCheck(None, _name_templates(data, found))
    problems = _name_templates(data, semantic_problems(spec))
    return SpecCheck(None if problems else spec, problems)


def _name_templates(data: Any, problems: list[Problem]) -> list[Problem]:
    """A problem inside a workstream made from a template says which template (the fix may
    belong there)."""
    streams = data.get("workstreams") if isinstance(data, dict) else None
    if not isinstance(streams, list):
        return problems
    named = []
    for problem in problems:
        index = (
            problem.path[1]
            if problem.path[:1] == ("workstreams",) and len(problem.path) > 1
            else None
        )
        ws = streams[index] if isinstance(index, int) and index < len(streams) else None
        template = ws.get("template") if isinstance(ws, dict) else None
        if template and len(problem.path) > 2:
            problem = Problem(
                problem.path, f"{problem.message} (from template {template!r})", problem.key
            )
        named.append(problem)
    return named


def template_problems(data: Any) -> list[Problem]:
    """Templates that cannot be used as written, and uses that do not fit their template."""
    if not isinstance(data, dict):
        return []
    templates = data.get("templates") or {}
    problems: list[Problem] = []
    fields = set(WorkstreamSpec.model_fields) | {"with"}
    if isinstance(templates, dict):
        for name, template in templates.items():
            body = template.get("workstream") if isinstance(template, dict) else None
            if not isinstance(body, dict):
                continue
            at: tuple[PathPart, ...] = ("templates", name, "workstream")
            for key in sorted(body):
                if key in NOT_IN_TEMPLATES:
                    problems.append(
                        Problem(
                            at,
                            f"a template cannot set {key!r}: each workstream says it itself",
                            key=key,
                        )
                    )
                elif key not in fields:
                    allowed = sorted(fields - set(NOT_IN_TEMPLATES) - {"with_"})
                    problems.append(Problem(at, _unknown_field(key, allowed), key=key))
            declared = set(template.get("variables") or {})
            for used in sorted(placeholders(body) - declared):
                problems.append(
                    Problem(
                        at,
                        f"{{{{ {used} }}}} is not a variable of template "
                        f"{name!r}{_suggest(used, declared)}; declare it under "
                        "variables",
                    )
                )
    streams = data.get("workstreams")
    for i, ws in enumerate(streams if isinstance(streams, list) else []):
        if not isinstance(ws, dict):
            continue
        name = ws.get("template")
        given = ws.get("with") or {}
        if name is None:
            if given:
                problems.append(
                    Problem(
                        ("workstreams", i, "with"),
                        "with: needs a template: name the template its variables are for",
                    )
                )
            continue
        template = templates.get(name) if isinstance(templates, dict) else None
        if not isinstance(template, dict):
            known = sorted(templates) if isinstance(templates, dict) else []
            listed = f"; templates: {', '.join(known)}" if known else "; the phase has no templates"
            problems.append(
                Problem(
                    ("workstreams", i, "template"),
                    f"unknown template {name!r}{_suggest(str(name), known)}{listed}",
                )
            )
            continue
        variables = template.get("variables") or {}
        for key in sorted(given) if isinstance(given, dict) else []:
            if key not in variables:
                problems.append(
                    Problem(
                        ("workstreams", i, "with", key),
                        f"template {name!r} has no variable {key!r}{_suggest(key, variables)}",
                    )
                )
        for key, default in sorted(variables.items()):
            if default is None and key not in given:
                problems.append(
                    Problem(
                        ("workstreams", i, "with"),
                        f"template {name!r} needs {key!r}: add with: {{{key}: …}}",
                    )
                )
    return problems


def _loc(loc: Sequence[Any]) -> tuple[PathPart, ...]:
    return tuple(p if isinstance(p, int) else str(p) for p in loc)


def _schema_problems(data: Any) -> list[Problem]:
    validator = Draft202012Validator(phase_json_schema())
    problems = [p for e in validator.iter_errors(data) for p in _schema_problem(e)]
    defaults = data.get("defaults") if isinstance(data, dict) else None
    if isinstance(defaults, dict):
        # The defaults hold partial sub-objects; check their keys against the real models.
        problems += _defaults_problems(defaults)
    return sorted(problems, key=lambda p: (p.json_path, p.message))


def _schema_problem(error: SchemaError) -> list[Problem]:
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        schema = error.schema if isinstance(error.schema, dict) else {}
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return [Problem(path, _unknown_field(name, allowed), key=name) for name in extra]
    return [_other_problem(error, path)]


def _other_problem(error: SchemaError, path: tuple[PathPart, ...]) -> Problem:
    if error.validator == "required":
        return Problem(path, f"missing required field: {error.message.split(' ')[0]}")
    if error.validator == "pattern":
        return Problem(
            path, f"{error.instance!r} is not a valid name (letters, digits, '.', '_', '-')"
        )
    return Problem(path, error.message)


def _unknown_field(name: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else f" (allowed: {', '.join(allowed)})"
    return f"unknown field {name!r}{hint}"


_DEFAULTS_MODELS: dict[str, type[BaseModel]] = {
    "execution_request": ExecutionRequest,
    "constraints": Constraints,
    "resilience_policy": ResiliencePolicy,
    "patch_policy": PatchPolicy,
}


def _defaults_problems(defaults: dict[str, Any]) -> list[Problem]:
    problems = []
    for key, model in _DEFAULTS_MODELS.items():
        value = defaults.get(key)
        if not isinstance(value, dict):
            continue
        allowed = sorted(model.model_fields)
        for name in sorted(set(value) - set(allowed)):
            problems.append(Problem(("defaults", key), _unknown_field(name, allowed), key=name))
    return problems


# -- semantic rules ---------------------------------------------------------------------------

#: Environment variable names whose values uet treats as secrets (masked in all it keeps).
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_BAD_REF_PART = re.compile(r"\.\.|\.lock$|\.$|@\{")


#: The most workstreams one phase may hold: what bench/scale.py has run to the end (issue 20:
#: 10,000 in 43 minutes, no history or payload warning). Past it nothing is measured: the
#: state each continued execution reads again grows with the phase.
MAX_WORKSTREAMS = 10_000


def semantic_problems(spec: PhaseSpec) -> list[Problem]:
    problems: list[Problem] = []
    if len(spec.workstreams) > MAX_WORKSTREAMS:
        problems.append(
            Problem(
                ("workstreams",),
                f"{len(spec.workstreams):,} workstreams: a phase holds at most "
                f"{MAX_WORKSTREAMS:,} (the most uet has run in one phase and measured); split "
                "it into several phases",
            )
        )
    ids: dict[str, int] = {}
    for i, ws in enumerate(spec.workstreams):
        where: tuple[PathPart, ...] = ("workstreams", i)
        wid = ws.workstream_id
        if wid in ids:
            problems.append(
                Problem(
                    (*where, "workstream_id"),
                    f"duplicate workstream id {wid!r} (first at $.workstreams[{ids[wid]}])",
                )
            )
        else:
            ids[wid] = i
        if _BAD_REF_PART.search(wid):
            problems.append(
                Problem((*where, "workstream_id"), f"{wid!r} cannot be part of a git ref name")
            )
    for i, ws in enumerate(spec.workstreams):
        where = ("workstreams", i)
        seen: set[str] = set()
        for j, dep in enumerate(ws.dependencies):
            at = (*where, "dependencies", j)
            if dep == ws.workstream_id:
                problems.append(Problem(at, f"{dep!r} depends on itself"))
            elif dep not in ids:
                problems.append(Problem(at, f"unknown dependency {dep!r}{_suggest(dep, ids)}"))
            elif dep in seen:
                problems.append(Problem(at, f"dependency {dep!r} is listed twice"))
            seen.add(dep)
        problems += _tool_problems(ws.execution_request, (*where, "execution_request"))
        for name in ws.execution_request.env:
            if SECRET_NAME.search(name):
                problems.append(
                    Problem(
                        (*where, "execution_request", "env", name),
                        f"{name} looks like a secret: set it in the worker's environment, "
                        "not in the spec (the spec travels in the run's input)",
                    )
                )
        problems += _gate_problems(
            ws.acceptance_criteria.gates, (*where, "acceptance_criteria", "gates")
        )
        scope = ws.constraints.file_scope
        for field in ("allowed_paths", "forbidden_paths"):
            for j, pattern in enumerate(getattr(scope, field)):
                reason = scope_pattern_problem(pattern)
                if reason:
                    location = (*where, "constraints", "file_scope", field, j)
                    problems.append(Problem(location, reason))
    problems += _gate_problems(spec.gates, ("gates",))
    problems += _cycle_problems(spec, ids)
    problems += _router_problems(spec)
    return problems


def _router_problems(spec: PhaseSpec) -> list[Problem]:
    problems = []
    chains = [(("router", "default"), spec.router.default)] + [
        (("router", "rules", i, "tools"), rule.tools) for i, rule in enumerate(spec.router.rules)
    ]
    for where, tools in chains:
        for j, tool in enumerate(tools):
            if tool not in AI_TOOLS:
                problems.append(
                    Problem(
                        (*where, j),
                        f"the router routes to AI tools only ({', '.join(AI_TOOLS)}), not {tool!r}",
                    )
                )
    return problems


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


#: What people write for a tool uet knows by another name.
TOOL_ALIASES = {
    "bash": "shell",
    "sh": "shell",
    "zsh": "shell",
    "command": "shell",
    "cmd": "shell",
    "script": "shell",
    "exec": "shell",
    "run": "shell",
    "diff": "patch",
    "git-apply": "patch",
    "apply": "patch",
    "claude-code": "claude",
    "claude_code": "claude",
    "claudecode": "claude",
    "anthropic": "claude",
    "codex-cli": "codex",
    "codex_cli": "codex",
    "openai": "codex",
    "aider-chat": "aider",
    "router": "auto",
    "any": "auto",
}


def _tool_problems(request: Any, where: tuple[PathPart, ...]) -> list[Problem]:
    tool = request.tool_id
    if tool not in KNOWN_TOOLS:
        alias = TOOL_ALIASES.get(str(tool).lower())
        hint = f" (did you mean {alias!r}?)" if alias else _suggest(tool, KNOWN_TOOLS)
        return [
            Problem(
                (*where, "tool_id"),
                f"unknown tool {tool!r}{hint}; available: {', '.join(KNOWN_TOOLS)}",
            )
        ]
    if tool == "shell" and not request.command:
        return [Problem((*where, "command"), "the shell tool needs a command")]
    if tool == "patch" and not request.patch_file:
        return [Problem((*where, "patch_file"), "the patch tool needs a patch_file")]
    if (tool in AI_TOOLS or tool == "auto") and not (request.prompt or "").strip():
        return [Problem((*where, "prompt"), f"the {tool} tool needs a prompt")]
    return []


def _gate_problems(gates: list[GateSpec], where: tuple[PathPart, ...]) -> list[Problem]:
    problems = []
    index: dict[str, int] = {}
    for i, gate in enumerate(gates):
        if gate.gate_id in index:
            problems.append(Problem((*where, i, "gate_id"), f"duplicate gate id {gate.gate_id!r}"))
        index.setdefault(gate.gate_id, i)
        if not gate.command:
            problems.append(Problem((*where, i, "command"), "empty gate command"))
        if gate.expect is not None:
            problems += _expect_problems(gate.expect, (*where, i, "expect"))
    graph = nx.DiGraph()
    for i, gate in enumerate(gates):
        graph.add_node(gate.gate_id)
        for j, name in enumerate(gate.after):
            if name not in index:
                problems.append(
                    Problem(
                        (*where, i, "after", j),
                        f"gate {gate.gate_id!r} runs after unknown gate {name!r}"
                        f"{_suggest(name, index)}",
                    )
                )
            else:
                graph.add_edge(name, gate.gate_id)
    for cycle in find_cycles(graph):
        first = index[cycle[0]]
        problems.append(Problem((*where, first, "after"), f"gate cycle: {' -> '.join(cycle)}"))
    return problems


def _expect_problems(expect: GateExpect, where: tuple[PathPart, ...]) -> list[Problem]:
    problems = []
    if expect.stdout_matches is not None:
        try:
            re.compile(expect.stdout_matches)
        except re.error as exc:
            problems.append(Problem((*where, "stdout_matches"), f"not a regular expression: {exc}"))
    for field in ("file_exists", "file_absent"):
        path = getattr(expect, field)
        reason = expect_path_problem(path) if path is not None else None
        if reason:
            problems.append(Problem((*where, field), reason))
    return problems


def expect_path_problem(path: str) -> str | None:
    """Why a gate ``expect`` path is unusable, or None: it names a file of the checkout."""
    if not path.strip():
        return "empty path"
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", path):
        return f"{path!r} is absolute; expect paths are relative to the checkout"
    if ".." in re.split(r"[\\/]", path):
        return f"{path!r} contains '..'; expect paths cannot leave the checkout"
    return None


def _cycle_problems(spec: PhaseSpec, ids: dict[str, int]) -> list[Problem]:
    graph = dependency_graph(spec)
    return [
        Problem(
            ("workstreams", ids[cycle[0]], "dependencies"),
            f"dependency cycle: {' -> '.join(cycle)}",
        )
        for cycle in find_cycles(graph)
    ]


def dependency_graph(spec: PhaseSpec) -> nx.DiGraph:
    """Edges point from a dependency to its dependent; unknown and self edges are left out."""
    graph = nx.DiGraph()
    known = {ws.workstream_id for ws in spec.workstreams}
    for ws in spec.workstreams:
        graph.add_node(ws.workstream_id)
        for dep in ws.dependencies:
            if dep in known and dep != ws.workstream_id:
                graph.add_edge(dep, ws.workstream_id)
    return graph


def find_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle per strongly connected component, written in dependency order and closed,
    e.g. ``["ws-a", "ws-b", "ws-a"]`` for ws-b depending on ws-a and ws-a on ws-b."""
    cycles = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        start = min(component)
        sub = graph.subgraph(component)
        edges = nx.find_cycle(sub, source=start)
        cycle = [edges[0][0]] + [v for _, v in edges]
        cycles.append(cycle)
    return sorted(cycles)


def scope_pattern_problem(pattern: str) -> str | None:
    """Why a file-scope glob is unusable, or None. Scopes are repo-relative by construction."""
    if not pattern.strip():
        return "empty path pattern"
    if pattern.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:[\\/]", pattern):
        return f"{pattern!r} is absolute; scopes are relative to the repository root"
    if ".." in re.split(r"[\\/]", pattern):
        return f"{pattern!r} contains '..'; scopes cannot leave the repository"
    if "[" in pattern and "]" not in pattern.split("[", 1)[1]:
        return f"{pattern!r} has an unclosed '['"
    return None
