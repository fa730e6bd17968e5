"""The template detector: workstreams of different runs that have the same shape (tool, task
kind, gate set, scope shape; activities/lib/telemetry/shapes.py), proposed as one phase
template. What all of them say is fixed; what differs becomes a ``{{ variable }}`` (a string
keeps what its members share at its start and end and varies only the middle, at word
boundaries; one variable serves every field where the members' values are the same, so
``src/auth/**`` and "the auth module" share ``{{ module }}``). Read-only, deterministic: the
same rows give the same proposals, ids, names and order."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from activities.lib.telemetry.models import WorkstreamShape
from schemas.spec import NOT_IN_TEMPLATES

#: A proposal needs this many different workstreams, seen in this many different runs.
MIN_MEMBERS = 3
MIN_RUNS = 3

GroupKey = tuple[str, str, str, str]  # tool_id, task_kind ("" for none), gate_set, scope_shape


@dataclass(frozen=True)
class Member:
    """One workstream of a proposal: where it was last seen and how it would use the template
    (``own``: what it still says itself, where the members differ in a way no variable can
    carry)."""

    run_id: str
    workstream_id: str
    template: str | None
    with_: dict[str, Any]
    own: dict[str, Any]
    seen: int  # rows (runs) with this very workstream

    def use(self, template_name: str) -> dict[str, Any]:
        """The workstream as a phase file would say it with the template."""
        found: dict[str, Any] = {"workstream_id": self.workstream_id, "template": template_name}
        if self.with_:
            found["with"] = dict(self.with_)
        found.update(self.own)
        return found

    def to_json(self, template_name: str) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "workstream_id": self.workstream_id,
            "template": self.template,
            "with": dict(self.with_),
            "own": dict(self.own),
            "seen": self.seen,
            "use": self.use(template_name),
        }


@dataclass(frozen=True)
class Proposal:
    id: str
    name: str
    tool_id: str
    task_kind: str | None
    gate_set: str
    scope_shape: str
    runs: int
    workstreams: int
    members: list[Member]
    template: dict[str, Any]  # a TemplateSpec: description, variables, workstream
    uses_templates: list[str] = field(default_factory=list)

    @property
    def key(self) -> GroupKey:
        return (self.tool_id, self.task_kind or "", self.gate_set, self.scope_shape)

    @property
    def variables(self) -> list[str]:
        return list(self.template["variables"])

    @property
    def note(self) -> str | None:
        if not self.uses_templates:
            return None
        using = sum(1 for m in self.members if m.template)
        names = ", ".join(self.uses_templates)
        return f"{using} of {len(self.members)} already use a template ({names})"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tool_id": self.tool_id,
            "task_kind": self.task_kind,
            "gate_set": self.gate_set,
            "scope_shape": self.scope_shape,
            "runs": self.runs,
            "workstreams": self.workstreams,
            "variables": self.variables,
            "uses_templates": list(self.uses_templates),
            "note": self.note,
            "template": self.template,
            "members": [m.to_json(self.name) for m in self.members],
        }

    def template_yaml(self) -> str:
        """The template, ready to paste under ``templates:`` in a phase file."""
        return to_yaml({self.name: self.template})

    def uses_yaml(self) -> str:
        """The members as workstreams of a phase file would say them."""
        return to_yaml([m.use(self.name) for m in self.members])


def proposal_id(key: GroupKey) -> str:
    return "T-" + hashlib.sha256(json.dumps(list(key)).encode()).hexdigest()[:8]


def group_key(row: Any) -> GroupKey:
    return (row.tool_id, row.task_kind or "", row.gate_set, row.scope_shape)


def proposals(session: Session, keys: Iterable[GroupKey] | None = None) -> list[Proposal]:
    """Every proposal the history supports (only those of ``keys`` when given), by id."""
    query = select(WorkstreamShape).order_by(
        WorkstreamShape.at, WorkstreamShape.run_id, WorkstreamShape.workstream_id
    )
    wanted = set(keys) if keys is not None else None
    if wanted is not None:
        if not wanted:
            return []
        query = query.where(WorkstreamShape.gate_set.in_(sorted({k[2] for k in wanted})))
    groups: dict[GroupKey, list[WorkstreamShape]] = defaultdict(list)
    for row in session.scalars(query):
        key = group_key(row)
        if wanted is None or key in wanted:
            groups[key].append(row)
    found = [p for key, rows in groups.items() if (p := propose(key, rows)) is not None]
    return sorted(found, key=lambda p: p.id)


def propose(key: GroupKey, rows: Sequence[Any]) -> Proposal | None:
    """The proposal for one group of rows (of one shape), or None when there are too few."""
    runs = {row.run_id for row in rows}
    distinct: dict[str, tuple[Any, dict[str, Any], int]] = {}
    for row in rows:  # oldest first: the latest row of each distinct workstream is kept
        body = _body(row.spec or {})
        canon = json.dumps(body, sort_keys=True)
        seen = distinct[canon][2] + 1 if canon in distinct else 1
        distinct[canon] = (row, body, seen)
    if len(distinct) < MIN_MEMBERS or len(runs) < MIN_RUNS:
        return None
    chosen = sorted(distinct.values(), key=lambda item: (item[0].workstream_id, item[0].run_id))
    bodies = [body for _, body, _ in chosen]
    built = _Builder(bodies).build()
    name = _template_name(key, built.variables)
    uses = sorted({row.template for row, _, _ in chosen if row.template})
    description = f"proposed by uet from {len(chosen)} similar workstreams in {len(runs)} runs"
    members = [
        Member(
            run_id=row.run_id,
            workstream_id=row.workstream_id,
            template=row.template,
            with_=built.with_[i],
            own=built.own[i],
            seen=seen,
        )
        for i, (row, _, seen) in enumerate(chosen)
    ]
    return Proposal(
        id=proposal_id(key),
        name=name,
        tool_id=key[0],
        task_kind=key[1] or None,
        gate_set=key[2],
        scope_shape=key[3],
        runs=len(runs),
        workstreams=len(rows),
        members=members,
        template={
            "description": description,
            "variables": dict.fromkeys(built.variables),
            "workstream": built.body,
        },
        uses_templates=uses,
    )


def _body(spec: dict[str, Any]) -> dict[str, Any]:
    """What a template may say of a recorded workstream: not its id, dependencies, template or
    with; a gate's ``retry_flaky: false`` is what it says without it."""
    body = {k: v for k, v in spec.items() if k not in NOT_IN_TEMPLATES}
    gates = (body.get("acceptance_criteria") or {}).get("gates")
    if isinstance(gates, list):
        cleaned = [
            {k: v for k, v in g.items() if not (k == "retry_flaky" and v is False)}
            if isinstance(g, dict)
            else g
            for g in gates
        ]
        body["acceptance_criteria"] = {**body["acceptance_criteria"], "gates": cleaned}
    return body


def _template_name(key: GroupKey, variables: list[str]) -> str:
    base = key[1] or (f"{key[0]}-{variables[0]}" if variables else key[0]) or "proposed"
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._")
    return (slug or "proposed")[:100]


def to_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


# -- building the template -----------------------------------------------------------------------

Path = tuple[str | int, ...]


class _Unresolvable(Exception):
    """The members differ here in a way a variable cannot carry."""


@dataclass
class _Leaf:
    """A value that differs between the members (strings, numbers or booleans)."""

    path: Path
    values: list[Any]
    text: str | None = None  # the template string with sentinels, once resolved
    whole: int | None = None  # a whole-value variable (a candidate index)


@dataclass
class _Candidate:
    """A possible variable: one value per member."""

    values: tuple[Any, ...]
    order: int
    hints: list[tuple[int, int, str]] = field(default_factory=list)  # (priority, order, name)
    used: bool = False
    name: str = ""


@dataclass
class _Built:
    body: dict[str, Any]
    variables: list[str]
    with_: list[dict[str, Any]]
    own: list[dict[str, Any]]


_NOUNS = {
    "api",
    "app",
    "area",
    "class",
    "command",
    "component",
    "controller",
    "crate",
    "directory",
    "doc",
    "endpoint",
    "feature",
    "file",
    "folder",
    "function",
    "handler",
    "job",
    "library",
    "migration",
    "model",
    "module",
    "package",
    "page",
    "plugin",
    "project",
    "resource",
    "route",
    "schema",
    "screen",
    "script",
    "section",
    "service",
    "table",
    "test",
    "view",
    "widget",
}
_GENERIC_DIRS = {
    "",
    "app",
    "apps",
    "cmd",
    "crates",
    "internal",
    "lib",
    "libs",
    "modules",
    "packages",
    "pkg",
    "src",
}
_PATH_KEYS = {"allowed_paths", "forbidden_paths", "patch_file"}


def _noun(word: str) -> str | None:
    word = word.lower()
    if word in _NOUNS:
        return word
    if word.endswith("s") and word[:-1] in _NOUNS:
        return word[:-1]
    return None


def _boundary(text: str, at: int) -> bool:
    return at <= 0 or at >= len(text) or not (text[at - 1].isalnum() and text[at].isalnum())


def split(values: Sequence[str]) -> tuple[str, list[str], str]:
    """The longest common prefix and suffix of ``values`` that end and start at word
    boundaries, and each value's middle."""
    shortest = min(len(v) for v in values)
    lcp = 0
    while lcp < shortest and all(v[lcp] == values[0][lcp] for v in values):
        lcp += 1
    while lcp > 0 and not all(_boundary(v, lcp) for v in values):
        lcp -= 1
    rest = [v[lcp:] for v in values]
    shortest = min(len(r) for r in rest)
    lcs = 0
    while lcs < shortest and all(
        r[len(r) - 1 - lcs] == rest[0][len(rest[0]) - 1 - lcs] for r in rest
    ):
        lcs += 1
    while lcs > 0 and not all(_boundary(v, len(v) - lcs) for v in values):
        lcs -= 1
    prefix, suffix = values[0][:lcp], values[0][len(values[0]) - lcs :]
    return prefix, [v[lcp : len(v) - lcs] for v in values], suffix


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def _tag(value: Any) -> Any:
    return (type(value).__name__, value)


class _Builder:
    def __init__(self, bodies: list[dict[str, Any]]) -> None:
        self.bodies = bodies
        self.leaves: list[_Leaf] = []
        self.own: list[dict[str, Any]] = [{} for _ in bodies]
        self.candidates: dict[tuple[Any, ...], _Candidate] = {}

    def build(self) -> _Built:
        skeleton = self._merge(list(self.bodies), (), in_list=False)
        for leaf in self.leaves:
            self._propose(leaf)
        for leaf in self.leaves:
            self._resolve(leaf)
        names = self._name()
        body = self._render(skeleton, names)
        ordered = sorted((c for c in self.candidates.values() if c.used), key=_rank)
        with_ = [
            {c.name: c.values[i] for c in ordered if c.values[i] is not None}
            for i in range(len(self.bodies))
        ]
        return _Built(body, [c.name for c in ordered], with_, self.own)

    # structure: what is equal, what differs, what cannot be a variable

    def _merge(self, values: list[Any], path: Path, in_list: bool) -> Any:
        first = values[0]
        if all(_same(v, first) for v in values):
            return first
        if all(isinstance(v, dict) for v in values):
            common = [k for k in first if all(k in v for v in values)]
            partial = sorted(set().union(*values) - set(common))
            if partial and in_list:
                raise _Unresolvable
            merged: dict[str, Any] = {}
            for k in common:
                try:
                    merged[k] = self._merge([v[k] for v in values], (*path, k), in_list)
                except _Unresolvable:
                    if in_list:
                        raise
                    self._keep_own((*path, k), [v[k] for v in values])
            for k in partial:
                self._keep_own((*path, k), [v.get(k, _ABSENT) for v in values])
            return merged
        if all(isinstance(v, list) for v in values):
            if len({len(v) for v in values}) != 1:
                raise _Unresolvable
            return [
                self._merge([v[i] for v in values], (*path, i), in_list=True)
                for i in range(len(first))
            ]
        kinds = {_kind(v) for v in values}
        if len(kinds) != 1 or None in kinds:
            raise _Unresolvable
        leaf = _Leaf(path, list(values))
        self.leaves.append(leaf)
        return leaf

    def _keep_own(self, path: Path, values: list[Any]) -> None:
        for i, value in enumerate(values):
            if value is _ABSENT:
                continue
            node = self.own[i]
            for part in path[:-1]:
                node = node.setdefault(str(part), {})
            node[str(path[-1])] = value

    # variables

    def _candidate(self, values: Iterable[Any]) -> _Candidate:
        values = tuple(values)
        key = tuple(_tag(v) for v in values)
        if key not in self.candidates:
            self.candidates[key] = _Candidate(values, len(self.candidates))
        return self.candidates[key]

    def _propose(self, leaf: _Leaf) -> None:
        if not isinstance(leaf.values[0], str):
            candidate = self._candidate(leaf.values)
            candidate.hints.append((5, candidate.order, _field(leaf.path)))
            return
        prefix, middles, suffix = split(leaf.values)
        candidate = self._candidate(middles)
        priority, name = _hint(leaf.path, prefix, middles, suffix)
        candidate.hints.append((priority, candidate.order, name))

    def _resolve(self, leaf: _Leaf) -> None:
        if not isinstance(leaf.values[0], str):
            candidate = self._candidate(leaf.values)
            candidate.used = True
            leaf.whole = candidate.order
            return
        texts = list(leaf.values)
        for candidate in sorted(self.candidates.values(), key=_rank):
            if not all(isinstance(v, str) and v for v in candidate.values):
                continue
            patterns = [_word(v) for v in candidate.values]
            if not all(p.search(t) for p, t in zip(patterns, texts, strict=True)):
                continue
            token = _sentinel(candidate.order)
            texts = [p.sub(token, t) for p, t in zip(patterns, texts, strict=True)]
            if all(t == texts[0] for t in texts):
                break
        uniform = all(t == texts[0] for t in texts) and texts[0] != leaf.values[0]
        if uniform and texts[0].strip() != texts[0] and _only_sentinel(texts[0].strip()):
            uniform = False  # fill() would take " {{ x }}" as the bare value, without the space
        if uniform:
            for candidate in self.candidates.values():
                if _sentinel(candidate.order) in texts[0]:
                    candidate.used = True
            leaf.text = texts[0]
            return
        prefix, middles, suffix = split(leaf.values)
        if not (prefix + suffix).strip():
            prefix, middles, suffix = "", list(leaf.values), ""  # the whole value, spaces too
        candidate = self._candidate(middles)
        if not candidate.hints:
            candidate.hints.append((5, candidate.order, _field(leaf.path)))
        candidate.used = True
        leaf.text = prefix + _sentinel(candidate.order) + suffix

    def _name(self) -> dict[int, str]:
        taken: set[str] = set()
        names: dict[int, str] = {}
        for candidate in sorted((c for c in self.candidates.values() if c.used), key=_rank):
            base = _identifier(min(candidate.hints)[2] if candidate.hints else "value")
            name, n = base, 2
            while name in taken:
                name, n = f"{base}_{n}", n + 1
            taken.add(name)
            candidate.name = name
            names[candidate.order] = name
        return names

    def _render(self, node: Any, names: dict[int, str]) -> Any:
        if isinstance(node, _Leaf):
            if node.whole is not None:
                return "{{ " + names[node.whole] + " }}"
            text = node.text or ""
            for order, name in names.items():
                text = text.replace(_sentinel(order), "{{ " + name + " }}")
            return text
        if isinstance(node, dict):
            return {k: self._render(v, names) for k, v in node.items()}
        if isinstance(node, list):
            return [self._render(v, names) for v in node]
        return node


_ABSENT = object()


def _kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


def _rank(candidate: _Candidate) -> tuple[int, int]:
    best = min(candidate.hints)[0] if candidate.hints else 9
    return (best, candidate.order)


def _sentinel(order: int) -> str:
    """A mark no value contains and no word pattern matches into (private-use characters)."""
    return "\ue000" + chr(0xE100 + order) + "\ue000"


def _only_sentinel(text: str) -> bool:
    return len(text) == 3 and text[0] == text[2] == "\ue000"


def _word(value: str) -> re.Pattern[str]:
    return re.compile(r"(?<![A-Za-z0-9])" + re.escape(value) + r"(?![A-Za-z0-9])")


def _identifier(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower()
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"v_{name}" if name else "value"
    return name


def _field(path: Path) -> str:
    """The name of the field a value is at (list indices skipped)."""
    for part in reversed(path):
        if isinstance(part, str):
            return part
    return "value"


def _hint(path: Path, prefix: str, middles: list[str], suffix: str) -> tuple[int, str]:
    """A variable name for the middle of a string at ``path``, and how good a name it is
    (lower is better)."""
    after = re.match(r"\s+([A-Za-z]+)", suffix)
    before = re.search(r"([A-Za-z]+)\s+$", prefix)
    for match in (after, before):
        noun = _noun(match.group(1)) if match else None
        if noun:
            return 0, noun
    key = _field(path)
    if any(part in _PATH_KEYS for part in path if isinstance(part, str)):
        if any("/" in m for m in middles):
            return 3, "path"
        if suffix.startswith("/") or (not suffix and prefix.endswith("/")):
            parent = prefix.rstrip("/").rsplit("/", 1)[-1].lower()
            if parent in _GENERIC_DIRS or not parent.isidentifier():
                return 1, "module"
            return 1, parent[:-1] if parent.endswith("s") and len(parent) > 3 else parent
        return 2, "name"
    if prefix or suffix:
        return 4, {"prompt": "subject", "title": "subject", "command": "arg"}.get(key, key)
    return 5, key
