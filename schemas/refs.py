"""Names uet gives to things outside itself: git refs and Temporal workflow ids.

One place, because the workflows, the activities and the CLI must agree on them.
"""

from __future__ import annotations

TASK_QUEUE = "uet"


def workflow_id(run_id: str) -> str:
    return f"uet-{run_id}"


def child_workflow_id(parent_workflow_id: str, workstream_id: str) -> str:
    return f"{parent_workflow_id}/ws/{workstream_id}"


def integration_branch(run_id: str) -> str:
    return f"uet/{run_id}/integration"


def workstream_branch(run_id: str, workstream_id: str) -> str:
    return f"uet/{run_id}/ws/{workstream_id}"


def wave_tag(run_id: str, wave: int) -> str:
    return f"uet/{run_id}/wave-{wave}"


def branch_ref(branch: str) -> str:
    return f"refs/heads/{branch}"


def tag_ref(tag: str) -> str:
    return f"refs/tags/{tag}"
