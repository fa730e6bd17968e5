"""``codex``: Codex CLI, headless (`codex exec --json`), prompt on stdin.

Its JSONL events say what happened: ``turn.failed`` is an API failure (exit 1), and a run
whose every command failed still exits 0 — so the events decide, not the exit code. It
reports tokens only; dollars come from the model table.
"""

from __future__ import annotations

import json
from typing import Any

from activities.lib.adapters.ai import (
    api_failure,
    check_context,
    compose_prompt,
    run_cli,
    timed_out,
)
from activities.lib.adapters.base import ToolContext, ToolEnd
from activities.lib.adapters.models import priced
from schemas.tools import ToolUsage


class CodexAdapter:
    private_paths: tuple[str, ...] = ()  # Codex keeps its state in ~/.codex
    needs_work_tree = True
    env_vars: tuple[str, ...] = ("OPENAI_*", "CODEX_*")
    config_paths: tuple[str, ...] = (".codex",)
    program: str | None = "codex"

    async def run(self, ctx: ToolContext) -> ToolEnd:
        request = ctx.input.request
        prompt = compose_prompt(ctx)
        model = check_context(ctx, prompt, [])
        argv = [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            "workspace-write",
            "--skip-git-repo-check",
            *(["-m", request.model] if request.model else []),
            *request.args,
            "-",  # the prompt comes on stdin
        ]
        run = await run_cli(ctx, argv, stdin=prompt)
        if (ended := timed_out(ctx, run)) is not None:
            return ended
        events = _events(run.stdout)
        usage = priced(_usage(events, model), "codex")
        failed = [e for e in events if e.get("type") == "turn.failed"]
        errors = [e for e in events if e.get("type") == "error"]
        if failed or (errors and run.process.exit_code != 0):
            message = _message(failed[-1] if failed else errors[-1])
            raise api_failure(ctx, message)
        if run.process.exit_code != 0:
            return ToolEnd(
                ok=False,
                reason_code="tool_failed",
                usage=usage,
                exit_code=run.process.exit_code,
                reason=f"codex exited with {run.process.exit_code}",
                output_tail=run.process.tail,
            )
        items = [e.get("item") or {} for e in events if e.get("type") == "item.completed"]
        commands = [i for i in items if i.get("type") == "command_execution"]
        changes = [i for i in items if i.get("type") == "file_change"]
        broken = [c for c in commands if c.get("status") == "failed" or c.get("exit_code")]
        if commands and len(broken) == len(commands) and not changes:
            return ToolEnd(
                ok=False,
                reason_code="tool_failed",
                usage=usage,
                exit_code=0,
                reason=f"all {len(commands)} commands codex ran failed",
                output_tail=run.process.tail,
            )
        said = [str(i.get("text", "")) for i in items if i.get("type") == "agent_message"]
        return ToolEnd(ok=True, exit_code=0, usage=usage, output_tail="\n".join(said)[-2000:])


def _events(stdout: str) -> list[dict[str, Any]]:
    events = []
    for line in stdout.splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _message(event: dict[str, Any]) -> str:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(event.get("message") or error or event)


def _usage(events: list[dict[str, Any]], model: str) -> ToolUsage:
    total = ToolUsage(model=model or None)
    for event in events:
        if event.get("type") != "turn.completed":
            continue
        usage = event.get("usage") or {}
        total.input_tokens += int(usage.get("input_tokens") or 0)
        total.cached_tokens += int(usage.get("cached_input_tokens") or 0)
        total.output_tokens += int(usage.get("output_tokens") or 0)
    return total
