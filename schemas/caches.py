"""Caches prepared before the first tool runs: a workspace whose setup fills a cache is set up
once, at the phase's base, instead of by whichever workstream gets there first while the
others wait for it."""

from __future__ import annotations

from pydantic import Field

from schemas.base import GitSha, Model
from schemas.spec import WorkspaceSpec


class PrepareCachesInput(Model):
    repo_path: str
    run_id: str
    commit: GitSha = Field(description="the phase's base: where the first wave starts")
    workspace: WorkspaceSpec
    label: str = Field(description="names the step's scratch dir, e.g. caches-1")


class PrepareCachesResult(Model):
    setup_ran: bool = Field(description="false: every cache was there already")
    cache_hits: list[str] = Field(default_factory=list, description="paths restored or kept")
    seconds: float = 0.0
