"""`uet templates`: phase templates proposed from the history of runs — workstreams of
different runs with the same shape (tool, task kind, gates, scope shape), as one template and
the `with:` each of them would use (activities/lib/telemetry/templates_detect.py)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from activities.lib.telemetry import templates_detect as detect
from activities.lib.telemetry.store import database_url, learning_disabled
from activities.lib.telemetry.suggestions import history_exists
from runtime.cli.base import command
from runtime.cli.learning import _group, telemetry
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json, out
from runtime.settings import Settings

NO_HISTORY = "no history yet: templates are proposed from the workstreams of earlier runs"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = _group(
        sub,
        "templates",
        "phase templates proposed from similar workstreams of earlier runs",
        ["uet templates list", "uet templates show T-1a2b3c4d"],
    )
    s = command(
        group,
        "list",
        templates_list,
        "the template proposals: similar workstreams seen in at least 3 runs",
        ["uet templates list", "uet templates list --json"],
    )
    s.add_argument("--json", dest="as_json", action="store_true", help="a JSON list on stdout")
    s = command(
        group,
        "show",
        templates_show,
        "one proposal as YAML to paste under `templates:`, and how its members would use it",
        ["uet templates show T-1a2b3c4d", "uet templates show T-1a2b3c4d --json"],
    )
    s.add_argument(
        "proposal_id", metavar="ID", help="a proposal id (T-…, from `uet templates list`)"
    )
    s.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help="{id, name, template, members, yaml, …} on stdout",
    )


def _proposals() -> list[detect.Proposal] | None:
    """Every proposal; None when there is no history (and nothing is created to find out)."""
    if not learning_disabled() and not history_exists(database_url(Settings.from_env().home)):
        return None
    with telemetry() as store, store.session() as session:
        return detect.proposals(session)


def templates_list(as_json: bool) -> int:
    found = _proposals()
    if found is None:
        if as_json:
            print(f"uet: {NO_HISTORY}", file=sys.stderr)
            emit_json([])
        else:
            out.print(NO_HISTORY, markup=False)
        return ExitCode.COMPLETED
    if as_json:
        emit_json([_summary(p) for p in found])
        return ExitCode.COMPLETED
    if not found:
        out.print(
            f"no template proposals: no {detect.MIN_MEMBERS} similar workstreams seen in "
            f"{detect.MIN_RUNS} runs yet",
            markup=False,
        )
    for p in found:
        variables = ", ".join(p.variables) or "none"
        note = f"; {p.note}" if p.note else ""
        out.print(
            f"{p.id}  {p.name:<16} {len(p.members):>3} workstreams in {p.runs:>3} runs  "
            f"{p.tool_id} {p.task_kind or '-'} {p.scope_shape or '(whole repo)'}  "
            f"variables: {variables}{note}",
            markup=False,
        )
    return ExitCode.COMPLETED


def templates_show(proposal_id: str, as_json: bool) -> int:
    found = _proposals()
    if found is None:
        raise UserError(f"no template proposal {proposal_id}: {NO_HISTORY}")
    wanted = proposal_id.strip().lower()
    proposal = next((p for p in found if p.id.lower() == wanted), None)
    if proposal is None:
        known = ", ".join(p.id for p in found[:10]) or "none yet"
        raise UserError(
            f"no template proposal {proposal_id}; `uet templates list` lists them (known: {known})"
        )
    if as_json:
        emit_json({**proposal.to_json(), "yaml": proposal.template_yaml()})
        return ExitCode.COMPLETED
    lines = [
        f"# template proposal {proposal.id}: {len(proposal.members)} similar workstreams in "
        f"{proposal.runs} runs ({proposal.tool_id}, task kind {proposal.task_kind or '-'}, "
        f"scope {proposal.scope_shape or '(whole repo)'})",
    ]
    if proposal.note:
        lines.append(f"# note: {proposal.note}")
    lines.append("# paste under `templates:` in a phase file:")
    lines.append(proposal.template_yaml().rstrip("\n"))
    lines.append("")
    lines.append("# the members (run, workstream), as workstreams using the template:")
    for member in proposal.members:
        seen = f", and {member.seen - 1} more run(s)" if member.seen > 1 else ""
        used = f"; it uses template {member.template}" if member.template else ""
        lines.append(f"# run {member.run_id}, workstream {member.workstream_id}{seen}{used}")
        lines.append(detect.to_yaml([member.use(proposal.name)]).rstrip("\n"))
    out.print("\n".join(lines), markup=False)
    return ExitCode.COMPLETED


def _summary(p: detect.Proposal) -> dict[str, Any]:
    return {
        "id": p.id,
        "name": p.name,
        "tool_id": p.tool_id,
        "task_kind": p.task_kind,
        "scope_shape": p.scope_shape,
        "runs": p.runs,
        "workstreams": p.workstreams,
        "members": [{"run_id": m.run_id, "workstream_id": m.workstream_id} for m in p.members],
        "variables": p.variables,
        "uses_templates": p.uses_templates,
        "note": p.note,
    }
