"""``claude``: Claude Code, headless (`claude -p --output-format json`).

Classified from its result object first, its exit code second: an API error comes back as
``subtype: success, is_error: true`` with exit 1; ``--verbose`` turns the output into a JSON
array whose last ``type == "result"`` element is the result.
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

ALLOWED_TOOLS = "Read,Edit,Write,Glob,Grep"
DEFAULT_MAX_TURNS = 30


class ClaudeAdapter:
    # Claude Code keeps its state in ~/.claude; a project-local settings file may appear.
    private_paths: tuple[str, ...] = (".claude/settings.local.json",)
    needs_work_tree = True
    #: What Claude Code reads of the environment (its key, endpoints, Bedrock/Vertex switches).
    env_vars: tuple[str, ...] = ("ANTHROPIC_*", "CLAUDE_*", "DISABLE_*", "MAX_THINKING_TOKENS")
    #: Its login and settings in the home directory (seeded read-only into a private home).
    config_paths: tuple[str, ...] = (".claude", ".claude.json")
    program: str | None = "claude"

    async def run(self, ctx: ToolContext) -> ToolEnd:
        request = ctx.input.request
        prompt = compose_prompt(ctx)
        model = check_context(ctx, prompt, [])
        argv = [
            "claude",
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            ALLOWED_TOOLS,
            "--max-turns",
            str(request.max_turns or DEFAULT_MAX_TURNS),
            *(["--model", request.model] if request.model else []),
            *(
                ["--max-budget-usd", f"{budget:.4f}"]
                if (budget := ctx.input.max_budget_usd) is not None
                else []
            ),
            *request.args,
        ]
        run = await run_cli(ctx, argv, stdin=prompt)
        if (ended := timed_out(ctx, run)) is not None:
            return ended
        result = _result_object(run.stdout)
        if result is None:
            return ToolEnd(
                ok=False,
                reason_code="tool_failed",
                exit_code=run.process.exit_code,
                reason=f"claude exited with {run.process.exit_code} and no result object",
                output_tail=run.process.tail or run.stdout[-2000:],
            )
        usage = priced(_usage(result, model), "claude")
        text = str(result.get("result") or "")
        subtype = result.get("subtype")
        if result.get("is_error"):
            if subtype == "error_max_turns":
                return ToolEnd(
                    ok=False,
                    reason_code="max_turns",
                    usage=usage,
                    reason=f"stopped after {result.get('num_turns')} turns "
                    "(execution_request.max_turns)",
                    exit_code=run.process.exit_code,
                )
            if subtype == "success":
                raise api_failure(ctx, text or "is_error with no message")
            if subtype == "error_max_budget_usd":
                return ToolEnd(
                    ok=False,
                    reason_code="tool_failed",
                    usage=usage,
                    reason=f"stopped at its budget of ${ctx.input.max_budget_usd}",
                    exit_code=run.process.exit_code,
                )
            return ToolEnd(
                ok=False,
                reason_code="tool_failed",
                usage=usage,
                reason=f"claude ended with {subtype}: {text[:300]}",
                exit_code=run.process.exit_code,
            )
        denials = result.get("permission_denials") or []
        reason = ""
        if denials:
            names = sorted({str(d.get("tool_name")) for d in denials if isinstance(d, dict)})
            reason = f"permission denied for {', '.join(names)}"
        return ToolEnd(
            ok=True,
            exit_code=run.process.exit_code,
            usage=usage,
            reason=reason,
            reason_code="permission_denied" if denials else "",
            output_tail=text[-2000:],
        )


def _result_object(stdout: str) -> dict[str, Any] | None:
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return None
    if isinstance(data, list):  # --verbose: the conversation, the result last
        results = [m for m in data if isinstance(m, dict) and m.get("type") == "result"]
        return results[-1] if results else None
    return data if isinstance(data, dict) and data.get("type") == "result" else None


def _usage(result: dict[str, Any], model: str) -> ToolUsage:
    usage = result.get("usage") or {}
    cost = result.get("total_cost_usd")
    models = result.get("modelUsage") or {}
    return ToolUsage(
        model=next(iter(models), None) or model or None,
        input_tokens=int(usage.get("input_tokens") or 0)
        + int(usage.get("cache_creation_input_tokens") or 0)
        + int(usage.get("cache_read_input_tokens") or 0),
        output_tokens=int(usage.get("output_tokens") or 0),
        cached_tokens=int(usage.get("cache_read_input_tokens") or 0),
        cost_usd=float(cost) if cost is not None else None,
        cost_source="reported" if cost is not None else "unknown",
    )
