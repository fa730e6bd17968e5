"""The adapter interface."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from activities.artifacts import ArtifactStore
from activities.git import Git
from schemas.tools import ToolReason, ToolRunInput, ToolUsage


@dataclass(frozen=True)
class ToolContext:
    input: ToolRunInput
    checkout: Git  # the tool's own throwaway repository, work tree = its cwd
    env: dict[str, str]  # the environment the tool runs with (UET_* included)
    log_path: Path
    artifacts: ArtifactStore
    scratch: Path  # outside the work tree: prompts, tool histories, structured output

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

    async def run(self, ctx: ToolContext) -> ToolEnd: ...
