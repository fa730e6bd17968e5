"""``shell``: run a command in the checkout; whatever it leaves behind is the change."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.lib.adapters.base import ToolContext, ToolEnd
from activities.lib.process import exit_description, run_process
from activities.lib.sandbox import LIMIT_REASONS, describe_limit


class ShellAdapter:
    private_paths: tuple[str, ...] = ()
    needs_work_tree = True
    env_vars: tuple[str, ...] = ()
    config_paths: tuple[str, ...] = ()
    program: str | None = None

    async def run(self, ctx: ToolContext) -> ToolEnd:
        command = ctx.input.request.command
        assert command is not None, "spec validation guarantees a command"
        result = await run_process(
            command,
            cwd=ctx.cwd,
            env=ctx.env,
            timeout_s=ctx.input.timeout_s,
            log_path=ctx.log_path,
            sandbox=ctx.sandbox,
        )
        if result.not_found:
            # Retrying cannot make a missing program appear.
            raise ApplicationError(
                f"{ctx.input.workstream_id}: command not found: {command!r} "
                f"({result.tail.strip()[-300:]})",
                type="CommandNotFound",
                non_retryable=True,
            )
        if result.limit_hit is not None and ctx.sandbox is not None:
            return ToolEnd(
                ok=False,
                reason=describe_limit(result.limit_hit, ctx.sandbox.limits),
                reason_code=LIMIT_REASONS[result.limit_hit],  # type: ignore[arg-type]
                exit_code=result.exit_code,
                timed_out=result.timed_out,
                output_tail=result.tail,
            )
        if result.timed_out:
            return ToolEnd(
                ok=False,
                reason=f"timed out after {ctx.input.timeout_s:g}s",
                timed_out=True,
                output_tail=result.tail,
            )
        if result.exit_code != 0:
            return ToolEnd(
                ok=False,
                reason=exit_description(result.exit_code),
                exit_code=result.exit_code,
                output_tail=result.tail,
            )
        return ToolEnd(ok=True, exit_code=0, output_tail=result.tail)
