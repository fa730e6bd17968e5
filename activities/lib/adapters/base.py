"""The adapter interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from activities.lib.artifacts import ArtifactStore
from activities.lib.git import Git
from activities.lib.sandbox import SandboxPlan
from schemas.tools import ToolReason, ToolRunInput, ToolUsage


@dataclass(frozen=True)
class ToolContext:
    input: ToolRunInput
    #: The tool's own throwaway repository (work tree = its cwd); for adapters that need no
    #: work tree, the user's object store with a private index at the base instead.
    checkout: Git
    env: dict[str, str]  # the environment the tool runs with (UET_* included)
    log_path: Path
    artifacts: ArtifactStore
    scratch: Path  # outside the work tree: prompts, tool histories, structured output
    #: How the tool's process is contained (None: unsandboxed, no limits).
    sandbox: SandboxPlan | None = None

    @property
    def cwd(self) -> Path:
        assert self.checkout.work_tree is not None
        return self.checkout.work_tree


@dataclass(frozen=True)
class ToolEnd:
    """How the tool ended, before looking at what it changed."""

    ok: bool
    reason: str = ""
    reason_code: ToolReason = ""
    exit_code: int | None = None
    timed_out: bool = False
    output_tail: str = ""
    usage: ToolUsage | None = None


class Adapter(Protocol):
    #: Files the tool leaves in its work tree for itself (caches, histories): never captured.
    private_paths: tuple[str, ...]
    #: False for adapters that only write to ``ctx.checkout``'s index (``patch``): they skip
    #: the checkout, by far the largest cost of a trivial workstream.
    needs_work_tree: bool
    #: Names (``PREFIX_*`` for a prefix) of the worker's environment the tool needs: it sees
    #: those, a safe base and uet's own, never the rest (activities/lib/step_env.py).
    env_vars: tuple[str, ...]
    #: Paths under the home directory the tool reads its login and settings from.
    config_paths: tuple[str, ...]
    #: The executable a host must have to offer this tool (None: built into uet). A worker
    #: without it does not poll the tool's task queue (runtime/capabilities.py).
    program: str | None

    async def run(self, ctx: ToolContext) -> ToolEnd: ...
