"""``aider``: one headless message (`--message-file`), the files in scope as editable files.

aider exits 0 even when every model call failed: ``litellm.`` errors in its output with no
change made mean an API error. Its cost is the last ``Cost: $x message, $y session.`` line.
Its chat and input histories go to uet's scratch dir; its repo-map cache (``.aider*``) is
left out of the captured change.
"""

from __future__ import annotations

import re

from activities.lib.adapters.ai import (
    api_failure,
    check_context,
    compose_prompt,
    files_in_scope,
    run_cli,
    timed_out,
    write_private,
)
from activities.lib.adapters.base import ToolContext, ToolEnd
from activities.lib.adapters.models import priced
from schemas.tools import ToolUsage

_COST = re.compile(r"Cost: \$([0-9.]+) message, \$([0-9.]+) session")
_TOKENS = re.compile(
    r"Tokens: ([0-9.]+)([kM]?) sent(?:, ([0-9.]+)([kM]?) cache \w+)?.*?, "
    r"([0-9.]+)([kM]?) received"
)
_LITELLM_ERROR = re.compile(r"^.*litellm\.\w+(Error|Exception).*$", re.MULTILINE)
_SCALE = {"": 1, "k": 1_000, "M": 1_000_000}


class AiderAdapter:
    private_paths: tuple[str, ...] = (".aider*", ".aider*/**")
    needs_work_tree = True
    #: aider reaches many providers through litellm; each reads its own key.
    env_vars: tuple[str, ...] = (
        "AIDER_*", "OPENAI_*", "ANTHROPIC_*", "GEMINI_*", "OPENROUTER_*", "DEEPSEEK_*",
        "GROQ_*", "MISTRAL_*", "AZURE_*", "OLLAMA_*",
    )  # fmt: skip
    config_paths: tuple[str, ...] = (".aider.conf.yml", ".aider.model.settings.yml", ".env")
    program: str | None = "aider"

    async def run(self, ctx: ToolContext) -> ToolEnd:
        request = ctx.input.request
        prompt = compose_prompt(ctx)
        files = files_in_scope(ctx)
        model = check_context(ctx, prompt, files)
        message = write_private(ctx, "message.md", prompt)
        argv = [
            "aider",
            "--message-file",
            str(message),
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-gitignore",
            "--no-analytics",
            "--no-check-update",
            "--no-show-release-notes",
            "--no-pretty",
            "--no-stream",
            "--chat-history-file",
            str(ctx.scratch / "aider.chat.history.md"),
            "--input-history-file",
            str(ctx.scratch / "aider.input.history"),
            *(["--model", request.model] if request.model else []),
            *request.args,
            *files,
        ]
        run = await run_cli(ctx, argv)
        if (ended := timed_out(ctx, run)) is not None:
            return ended
        usage = priced(_usage(run.stdout, model), "aider")
        if run.process.exit_code != 0:
            # 1: it could not start (bad model, missing key); 2: usage error.
            return ToolEnd(
                ok=False,
                reason_code="tool_failed",
                usage=usage,
                exit_code=run.process.exit_code,
                reason=f"aider exited with {run.process.exit_code}",
                output_tail=(run.stdout + run.process.tail)[-2000:],
            )
        errors = _LITELLM_ERROR.findall(run.stdout)
        edited = "Applied edit to" in run.stdout
        if errors and not edited:
            lines = _LITELLM_ERROR.finditer(run.stdout)
            raise api_failure(ctx, next(lines).group(0).strip())
        return ToolEnd(ok=True, exit_code=0, usage=usage, output_tail=run.stdout[-2000:])


def _usage(stdout: str, model: str) -> ToolUsage:
    usage = ToolUsage(model=model or None)
    for match in _TOKENS.finditer(stdout):
        sent, sent_unit, cached, cached_unit, received, received_unit = match.groups()
        usage.input_tokens += int(float(sent) * _SCALE[sent_unit])
        usage.output_tokens += int(float(received) * _SCALE[received_unit])
        if cached:
            usage.cached_tokens += int(float(cached) * _SCALE[cached_unit])
    costs = _COST.findall(stdout)
    if costs:
        usage.cost_usd = float(costs[-1][1])  # the session total after the last message
        usage.cost_source = "reported"
    return usage
