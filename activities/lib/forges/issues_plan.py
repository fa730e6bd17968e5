"""A phase from a forge's open issues (``uet plan --from-issues``): each issue a workstream.

title → title, body → the prompt, "blocked by #N" / "depends on #N" / a task list's
``- [ ] #N`` → dependencies, labels ``tool:NAME`` and ``kind:KIND`` → tool and task kind, a
fenced ``uet`` block in the body → any other workstream fields (scope, gates, …). What cannot
be a dependency — a closed issue (done already), one outside the selection, a cycle — is
reported, one line each, and left out, so the phase written always validates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import yaml

from activities.lib.forges.base import Issue

_DEPENDS = re.compile(
    r"\b(?:blocked\s+by|depends\s+on)\s*:?\s*((?:#\d+(?:\s*(?:,|and|&)?\s*)?)+)", re.IGNORECASE
)
_TASK = re.compile(r"^\s*[-*]\s+\[[ xX]\]\s+#(\d+)\b", re.MULTILINE)
_NUMBER = re.compile(r"#(\d+)")
_FENCE = re.compile(r"^```uet[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass
class IssuePlan:
    phase: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    #: workstream id → its issue's number (for the comments after the run).
    issues: dict[str, int] = field(default_factory=dict)


def workstream_id(number: int) -> str:
    return f"issue-{number}"


def dependencies_of(body: str) -> list[int]:
    """The issue numbers ``body`` says it waits for, in order, once each."""
    found = [int(n) for match in _DEPENDS.finditer(body) for n in _NUMBER.findall(match.group(1))]
    found += [int(n) for n in _TASK.findall(body)]
    return list(dict.fromkeys(found))


def phase_from_issues(
    issues: Iterable[Issue], *, phase_id: str, title: str, closed: Iterable[int] = ()
) -> IssuePlan:
    chosen = {issue.number: issue for issue in issues if issue.state == "open"}
    done = set(closed)
    plan = IssuePlan(phase={})
    graph: nx.DiGraph[int] = nx.DiGraph()
    graph.add_nodes_from(chosen)
    workstreams: dict[int, dict[str, Any]] = {}
    for number, issue in sorted(chosen.items()):
        extra, body = _fenced(issue, plan.problems)
        ws: dict[str, Any] = {
            "workstream_id": workstream_id(number),
            "title": issue.title[:200],
            "issue": number,
            "execution_request": {"tool_id": "auto", "prompt": _prompt(issue, body)},
        }
        for label in issue.labels:
            key, _, value = label.partition(":")
            if key == "tool" and value:
                ws["execution_request"]["tool_id"] = value
            elif key == "kind" and value:
                ws["task_kind"] = value
        for key, value in extra.items():
            if key == "execution_request" and isinstance(value, dict):
                ws["execution_request"].update(value)
            elif key not in ("workstream_id", "dependencies", "issue"):
                ws[key] = value
        workstreams[number] = ws
        for dep in dependencies_of(body):
            if dep == number:
                plan.problems.append(f"#{number} depends on itself; left out")
            elif dep in done:
                plan.problems.append(f"#{number} waits for #{dep}, which is closed: done already")
            elif dep not in chosen:
                plan.problems.append(
                    f"#{number} waits for #{dep}, which is not among the selected open issues; "
                    "left out"
                )
            else:
                graph.add_edge(dep, number)
    for cycle in sorted(nx.simple_cycles(graph), key=sorted):
        loop = " → ".join(f"#{n}" for n in [*cycle, cycle[0]])
        plan.problems.append(f"dependency cycle {loop}: those links are left out")
        for a, b in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
            if graph.has_edge(a, b):
                graph.remove_edge(a, b)
    for number, ws in workstreams.items():
        deps = sorted(graph.predecessors(number))
        if deps:
            ws["dependencies"] = [workstream_id(d) for d in deps]
        plan.issues[ws["workstream_id"]] = number
    plan.phase = {
        "phase_id": phase_id,
        "title": title,
        "workstreams": [workstreams[n] for n in sorted(workstreams)],
    }
    return plan


def _fenced(issue: Issue, problems: list[str]) -> tuple[dict[str, Any], str]:
    """The ``uet`` block's fields, and the body without it."""
    match = _FENCE.search(issue.body or "")
    if match is None:
        return {}, issue.body or ""
    body = (issue.body[: match.start()] + issue.body[match.end() :]).strip()
    try:
        data = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        problems.append(
            f"#{issue.number}: its uet block is not YAML ({exc}); ignored".replace("\n", " ")
        )
        return {}, body
    if not isinstance(data, dict):
        problems.append(f"#{issue.number}: its uet block is not a mapping of fields; ignored")
        return {}, body
    return data, body


def _prompt(issue: Issue, body: str) -> str:
    text = f"{issue.title}\n\n{body}".strip()
    return f"{text}\n\n(from issue #{issue.number}{f': {issue.url}' if issue.url else ''})"
