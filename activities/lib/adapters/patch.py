"""``patch``: apply a ready unified diff (the spec's ``patch_file``, imported as an artifact)."""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ApplicationError

from activities.lib.adapters.base import ToolContext, ToolEnd
from activities.lib.git import apply_patch


class PatchAdapter:
    private_paths: tuple[str, ...] = ()
    needs_work_tree = False
    env_vars: tuple[str, ...] = ()
    config_paths: tuple[str, ...] = ()
    program: str | None = None

    async def run(self, ctx: ToolContext) -> ToolEnd:
        ref = ctx.input.patch_file
        if ref is None:
            raise ApplicationError(
                f"{ctx.input.workstream_id}: the patch tool was given no patch_file",
                type="PatchFileMissing",
                non_retryable=True,
            )
        # Into the private index only: no file is written, so no checkout is needed.
        output = await apply_patch(
            ctx.checkout,
            await asyncio.to_thread(ctx.artifacts.verified_path, ref),
            target="--cached",
            what=f"{ctx.input.workstream_id}: patch_file {ctx.input.request.patch_file!r} "
            f"at {ctx.input.base_sha[:12]}",
        )
        ctx.log_path.write_text(output)
        return ToolEnd(ok=True, exit_code=0, output_tail=output[-4096:])
