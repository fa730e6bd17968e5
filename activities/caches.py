"""Preparing a workspace's caches once, before any tool: setup runs in one checkout at the base
and its caches are saved; a setup that fails fails here, before a tool call is paid for."""

from __future__ import annotations

from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.remote_repo import open_run_repository
from activities.lib.state_dir import StateDir
from activities.lib.workspace.prepare import workspace_checkout
from schemas.caches import PrepareCachesInput, PrepareCachesResult


class CacheActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def prepare_caches(self, input: PrepareCachesInput) -> PrepareCachesResult:
        """Idempotent: caches whose key holds are there already and setup does not run again
        (a retry, another worker, a later run). Fails like a step's setup: ``SetupFailed``,
        non-retryable, after a second try on a fresh checkout."""
        repo = await open_run_repository(self.state.home, input.repo_path, input.commit)
        scratch = self.state.scratch(input.run_id, "caches", input.label)
        async with workspace_checkout(
            input.workspace,
            state=self.state,
            repo=repo,
            repo_path=input.repo_path,
            commit=input.commit,
            scratch=scratch,
        ) as (_slot, ready):
            return PrepareCachesResult(
                setup_ran=ready.setup_ran, cache_hits=ready.cache_hits, seconds=ready.seconds
            )
