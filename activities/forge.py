"""Publishing a run on its forge: uet's branch pushed, the pull request opened or updated,
and a comment left on each workstream's issue.

Safe to retry at any point: the push is of uet's own branch names (force, atomic), a pull
request is found before one is opened, and a comment is found by its marker before one is
written — so a retry, a second ``uet pr`` or a re-run never makes a second of anything.
What cannot succeed (no token here, a 401, a 404, a 422) fails at once, non-retryable; a rate
limit or a forge that is down is tried again when the forge says to.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore
from activities.lib.forges import ForgeError, open_forge
from activities.lib.forges.comments import comment_on_issues
from activities.lib.forges.publish import publish
from activities.lib.forges.target import PublishRefused, resolve
from activities.lib.heartbeat import heartbeating
from activities.lib.journal_store import compose
from activities.lib.parts import whole_record
from activities.lib.state_dir import StateDir
from schemas.forge import PullRequestRef
from schemas.publish import PublishInput, PublishResult


class ForgeActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def publish(self, input: PublishInput) -> PublishResult:
        """Push and open or update the run's pull request(s); comment on its issues."""
        where = f" on worker {os.getpid()}@{socket.gethostname()}"
        try:
            return await publish_run(
                input, self.state.home, self.state.artifacts, os.environ, where=where
            )
        except PublishRefused as refused:
            raise ApplicationError(
                str(refused), type="PublishRefused", non_retryable=True
            ) from None
        except ForgeError as error:
            if error.retryable:
                delay = timedelta(seconds=min(error.retry_after_s or 0, 600))
                raise ApplicationError(
                    str(error), type="ForgeBusy", next_retry_delay=delay
                ) from None
            raise ApplicationError(str(error), type="ForgeRefused", non_retryable=True) from None


async def publish_run(
    input: PublishInput,
    home: Path,
    store: ArtifactStore,
    environ: Mapping[str, str],
    *,
    where: str = "",
) -> PublishResult:
    record, spec = whole_record(input.record, store), input.forge
    if input.open_pull_requests and record.head_sha is None:
        raise PublishRefused(f"run {record.run_id} has no integration head to publish")
    head = record.head_sha or record.base_sha or ""
    target = await resolve(
        spec, record.repo_path, head, home,
        base_ref=input.base_ref, environ=environ, where=where,
        with_base=input.open_pull_requests,
    )  # fmt: skip
    ledger, _ = compose(store, record.journal, input.ledger)
    dashboard = environ.get("UET_DASHBOARD_URL")
    forge = open_forge(spec, target.repository, target.token)
    try:
        refs: list[PullRequestRef] = []
        if input.open_pull_requests:
            assert target.base is not None  # resolved with_base
            refs = await publish(
                forge, spec, target.repo, target.url, target.token, record, ledger,
                input.dependencies, target.base,
                title=input.title, dashboard=dashboard, issues=input.issues,
            )  # fmt: skip
        result = PublishResult(pull_requests=refs)
        if spec.comment_issues and input.issues:
            result.comments, result.problems = await comment_on_issues(
                forge, record, input.issues, ledger, refs, dashboard=dashboard
            )
        return result
    finally:
        await forge.aclose()
