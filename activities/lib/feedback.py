"""The feedback a tool gets on a fix attempt or after a reviewer's `adjust`."""

from __future__ import annotations

from schemas.tools import Feedback


def render_feedback(feedback: Feedback) -> str:
    """What the previous attempt got wrong and what a reviewer asked, for a person or an AI
    tool's prompt."""
    parts = [f"# uet: attempt {feedback.attempt} of up to {feedback.max_attempts}\n"]
    if feedback.instructions:
        who = f" ({feedback.reviewer})" if feedback.reviewer else ""
        parts.append(f"## Instructions from the reviewer{who}\n\n{feedback.instructions}\n")
    if feedback.gate_id:
        exit_code = "none (timed out)" if feedback.exit_code is None else str(feedback.exit_code)
        parts.append(
            f"## The previous change failed acceptance gate `{feedback.gate_id}`\n\n"
            f"- command: `{feedback.command}`\n"
            f"- exit code: {exit_code}\n"
            + (
                f"- error: {feedback.category} (signature `{feedback.signature}`)\n"
                if feedback.signature
                else ""
            )
            + "\n"
            "Output (last lines):\n\n"
            f"```\n{feedback.output_tail.rstrip()}\n```\n"
        )
    if feedback.guidance:
        parts.append(
            f"## What fixed this error before (uet recovery pattern {feedback.pattern_id})\n\n"
            f"{feedback.guidance.rstrip()}\n"
        )
    return "\n".join(parts)
