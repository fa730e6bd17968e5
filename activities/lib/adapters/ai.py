"""What the AI adapters share: the prompt, the context check, running the CLI, error classes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.adapters.base import ToolContext, ToolEnd
from activities.lib.adapters.models import model_info
from activities.lib.feedback import render_feedback
from activities.lib.process import ProcessResult, run_process
from activities.lib.sandbox import LIMIT_REASONS, describe_limit
from schemas.globs import matches_any

#: API failures worth another try (the activity's retry policy makes it); the rest are final.
_TRANSIENT = re.compile(
    r"rate.?limit|\b429\b|overloaded|\b5\d\d\b|timed? ?out|temporarily|unavailable|"
    r"connection (error|reset|refused)|try again",
    re.IGNORECASE,
)
CHARS_PER_TOKEN = 4  # a deliberately rough estimate: the check only has to catch gross excess


def compose_prompt(ctx: ToolContext) -> str:
    """The workstream's task, plus what the last attempt got wrong and what a reviewer asked."""
    prompt = (ctx.input.request.prompt or "").strip()
    if ctx.input.feedback is not None:
        prompt += "\n\n" + render_feedback(ctx.input.feedback)
    return prompt + "\n"


def files_in_scope(ctx: ToolContext) -> list[str]:
    """Existing files the workstream may edit (its allowed_paths, or none when unrestricted:
    then the tool chooses)."""
    allowed = ctx.input.allowed_paths
    if not allowed:
        return []
    found = []
    for path in sorted(ctx.cwd.rglob("*")):
        rel = path.relative_to(ctx.cwd).as_posix()
        if rel.startswith(".git/") or not path.is_file():
            continue
        if matches_any(rel, allowed):
            found.append(rel)
    return found


def check_context(ctx: ToolContext, prompt: str, files: list[str]) -> str:
    """Fail before paying for a call that cannot fit the model's context. The model name."""
    name, info = model_info(ctx.input.request.model, ctx.input.request.tool_id)
    size = len(prompt) + sum((ctx.cwd / f).stat().st_size for f in files)
    tokens = size // CHARS_PER_TOKEN
    if tokens > info.context_tokens:
        raise ApplicationError(
            f"{ctx.input.workstream_id}: the prompt and the {len(files)} files in scope come to "
            f"about {tokens:,} tokens, more than {name or 'the model'}'s {info.context_tokens:,}; "
            "narrow constraints.file_scope.allowed_paths or split the workstream",
            type="ContextTooLarge",
            non_retryable=True,
        )
    return name


@dataclass(frozen=True)
class CliRun:
    process: ProcessResult
    stdout: str


async def run_cli(ctx: ToolContext, argv: list[str], stdin: str | None = None) -> CliRun:
    """Run the tool with its prompt on stdin (from a file: never through a shell) and its
    structured stdout kept apart from its stderr."""
    stdin_path = None
    if stdin is not None:
        stdin_path = ctx.scratch / "prompt.md"
        stdin_path.write_text(stdin, "utf-8")
    stdout_path = ctx.scratch / "stdout"
    process = await run_process(
        argv,
        cwd=ctx.cwd,
        env=ctx.env,
        timeout_s=ctx.input.timeout_s,
        log_path=ctx.log_path,
        stdin_path=stdin_path,
        stdout_path=stdout_path,
        sandbox=ctx.sandbox,
    )
    if process.not_found:
        raise ApplicationError(
            f"{ctx.input.workstream_id}: {argv[0]} is not installed or not on PATH "
            f"({process.tail.strip()[-200:]})",
            type="CommandNotFound",
            non_retryable=True,
        )
    if process.limit_hit is not None and ctx.sandbox is not None:
        code = LIMIT_REASONS[process.limit_hit]
        raise ApplicationError(
            f"{ctx.input.workstream_id}: {argv[0]} "
            f"{describe_limit(process.limit_hit, ctx.sandbox.limits)} ({code})",
            {"reason_code": code},
            type="LimitExceeded",
            non_retryable=True,
        )
    stdout = stdout_path.read_bytes().decode("utf-8", "replace") if stdout_path.exists() else ""
    return CliRun(process, stdout)


def timed_out(ctx: ToolContext, run: CliRun) -> ToolEnd | None:
    """The outcome of a run the time limit ended, or None."""
    if not run.process.timed_out:
        return None
    return ToolEnd(
        ok=False,
        reason_code="timeout",
        timed_out=True,
        reason=f"timed out after {ctx.input.timeout_s:g}s",
        output_tail=run.process.tail,
    )


def api_failure(ctx: ToolContext, message: str) -> ApplicationError:
    """An API error, retried by the activity when it looks transient."""
    # The activity is also retried for lost workers; only this many attempts are the tool's.
    budget_left = (
        activity.info().attempt < ctx.input.max_attempts if activity.in_activity() else True
    )
    transient = bool(_TRANSIENT.search(message)) and budget_left
    return ApplicationError(
        f"{ctx.input.workstream_id}: {ctx.input.request.tool_id} API error: {message[:400]}",
        type="ToolApiError",
        non_retryable=not transient,
    )


def write_private(ctx: ToolContext, name: str, text: str) -> Path:
    path = ctx.scratch / name
    path.write_text(text, "utf-8")
    return path
