"""``patch``: apply a ready unified diff (the spec's ``patch_file``, imported as an artifact)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from activities.adapters.base import ToolContext, ToolEnd


class PatchAdapter:
    async def run(self, ctx: ToolContext) -> ToolEnd:
        ref = ctx.input.patch_file
        if ref is None:
            raise ApplicationError(
                f"{ctx.input.workstream_id}: the patch tool was given no patch_file",
                type="PatchFileMissing",
                non_retryable=True,
            )
        ctx.artifacts.read_bytes(ref)  # present and intact
        patch = ctx.artifacts.path_for(ref.sha256)
        # Into the checkout's own index and tree: it is a fresh repository made for this run.
        result = await ctx.checkout.run(
            "apply", "--index", "--whitespace=nowarn", str(patch), check=False
        )
        output = (result.stdout + result.stderr).decode("utf-8", "replace")
        ctx.log_path.write_text(output)
        if result.returncode != 0:
            raise ApplicationError(
                f"{ctx.input.workstream_id}: patch_file {ctx.input.request.patch_file!r} does "
                f"not apply to {ctx.input.base_sha[:12]}: {output.strip()[:500]}",
                type="PatchDoesNotApply",
                non_retryable=True,
            )
        return ToolEnd(ok=True, exit_code=0, output_tail=output[-4096:])
