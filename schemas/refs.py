"""Names uet gives to things outside itself: git refs and Temporal workflow ids.

One place, because the workflows, the activities and the CLI must agree on them.
"""

from __future__ import annotations

TASK_QUEUE = "uet"


def tool_queue(task_queue: str, tool_id: str) -> str:
    """Where a tool's runs go: only workers whose host has the tool poll it."""
    return f"{task_queue}.tool.{tool_id}"


def workflow_id(run_id: str) -> str:
    return f"uet-{run_id}"


def child_workflow_id(parent_workflow_id: str, workstream_id: str, execution: int = 1) -> str:
    """A workstream's child workflow; later executions (after a review or a merge conflict)
    get their own id."""
    first = f"{parent_workflow_id}/ws/{workstream_id}"
    return first if execution <= 1 else f"{first}/{execution}"


def rollback_workflow_id(run_id: str) -> str:
    """The workflow that rolls back a run that has already ended."""
    return f"{workflow_id(run_id)}/rollback"


def publish_workflow_id(run_id: str) -> str:
    """The workflow that publishes a finished run again (``uet pr``)."""
    return f"{workflow_id(run_id)}/pr"


def integration_branch(run_id: str) -> str:
    return f"uet/{run_id}/integration"


def workstream_branch(run_id: str, workstream_id: str) -> str:
    return f"uet/{run_id}/ws/{workstream_id}"


def wave_tag(run_id: str, wave: int) -> str:
    return f"uet/{run_id}/wave-{wave}"


def patch_tag(run_id: str, patch_id: str) -> str:
    """Keeps a patch's commit reachable on a remote after its branch moves to a later attempt
    (that attempt's gates diff against it); only repositories given by URL get one."""
    return f"uet/{run_id}/patches/{patch_id}"


def branch_ref(branch: str) -> str:
    return f"refs/heads/{branch}"


def tag_ref(tag: str) -> str:
    return f"refs/tags/{tag}"
