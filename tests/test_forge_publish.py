"""Publishing a run to a forge: the integration branch pushed to a real token-checking git
remote on loopback (git http-backend), one pull request opened on the fake GitHub with the
report as its body, and updated — never a second one — when published again; stacked
per-workstream pull requests on their dependencies' branches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fakes.forges.github import FakeGitHub
from helpers import git_out, phase, run_input, run_phase
from temporalio.client import Client
from temporalio.worker import Worker

from activities.lib.forges.github import GitHubForge
from activities.lib.forges.publish import publish
from activities.lib.git import open_repository
from runtime.records import read_report
from runtime.settings import Settings
from schemas.forge import ForgeSpec
from schemas.run import PhaseState

TOKEN = "ghp_test0123456789abcdefghijklmnopqrstuv"


def pull_requests(fake: FakeGitHub) -> dict[int, dict[str, Any]]:
    """The fake's pull requests (on GitHub a pull request is an issue with a "pull" part)."""
    return {n: i for n, i in fake.repo("acme/project").issues.items() if i.get("pull")}


def chain():  # type: ignore[no-untyped-def]
    return phase(
        phase_id="PH-PR",
        title="Two steps",
        workstreams=[
            {"workstream_id": "a", "execution_request": {"command": "echo a > a.txt"}},
            {
                "workstream_id": "b",
                "dependencies": ["a"],
                "execution_request": {"command": "echo b > b.txt"},
            },
        ],
    )


async def run_and_serve(
    client: Client, settings: Settings, make_repo: Any, git_http: Any, fake: FakeGitHub
) -> tuple[Any, Any, str, Path]:
    repo: Path = make_repo({"README.md": "hi\n"})
    record = await run_phase(client, settings, run_input(chain(), repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    url: str = git_http.serve(repo, "project")
    git_http.tokens.add(TOKEN)
    served = git_http.root / "project.git"
    fake.add_token(TOKEN)
    fake.add_repo("acme/project", git_dir=served)
    report = read_report(record.run_id, settings)
    assert report is not None
    return record, report.ledger, url, served


async def test_one_pull_request_opened_then_updated_never_twice(
    client: Client, settings: Settings, worker: Worker, make_repo: Any, git_http: Any
) -> None:
    with FakeGitHub() as fake:
        record, ledger, url, served = await run_and_serve(
            client, settings, make_repo, git_http, fake
        )
        forge = GitHubForge("acme/project", TOKEN, api_url=fake.url)
        spec = ForgeSpec(kind="github", remote=url, repository="acme/project")
        repo = await open_repository(Path(record.repo_path))
        deps = {"a": [], "b": ["a"]}
        args = (forge, spec, repo, url, TOKEN, record, ledger, deps, "main")
        (first,) = await publish(*args, title="PH-PR: Two steps", dashboard="http://dash")
        assert first.created and first.base == "main" and first.head == record.integration_branch
        assert git_out(served, "rev-parse", f"refs/heads/{record.integration_branch}") == (
            record.head_sha
        )
        (again,) = await publish(*args, title="PH-PR: Two steps, again")
        assert not again.created and again.number == first.number
        pulls = pull_requests(fake)
        assert len(pulls) == 1
        (pull,) = pulls.values()
        assert pull["title"] == "PH-PR: Two steps, again"
        assert "| a | ✅ completed | shell | 1 |" in pull["body"]
        assert "```mermaid" in pull["body"]
        await forge.aclose()


async def test_stacked_pull_requests_target_their_dependencies_branches(
    client: Client, settings: Settings, worker: Worker, make_repo: Any, git_http: Any
) -> None:
    with FakeGitHub() as fake:
        record, ledger, url, _ = await run_and_serve(client, settings, make_repo, git_http, fake)
        forge = GitHubForge("acme/project", TOKEN, api_url=fake.url)
        spec = ForgeSpec.model_validate(
            {"kind": "github", "remote": url, "pr": {"per_workstream": True}}
        )
        repo = await open_repository(Path(record.repo_path))
        refs = await publish(
            forge, spec, repo, url, TOKEN, record, ledger, {"a": [], "b": ["a"]}, "main",
            title="PH-PR", issues={"a": 101, "b": 102},
        )  # fmt: skip
        by_ws = {r.workstream_id: r for r in refs}
        assert by_ws["a"].base == "main"
        assert by_ws["b"].base == by_ws["a"].head == f"uet/{record.run_id}/ws/a"
        for ref in refs:
            body = pull_requests(fake)[ref.number]["body"]
            assert f"#{by_ws['a'].number}" in body and f"#{by_ws['b'].number}" in body
        # Each closes its own workstream's issue, not the rest of the stack's.
        body_a = pull_requests(fake)[by_ws["a"].number]["body"]
        assert "Closes #101" in body_a and "Closes #102" not in body_a
        await forge.aclose()


async def test_uet_pr_from_the_phase_files_forge_opens_then_updates(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    git_http: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    from helpers import cli

    with FakeGitHub() as fake:
        repo: Path = make_repo({"README.md": "hi\n"})
        url: str = git_http.serve(repo, "project")
        git_http.tokens.add(TOKEN)
        fake.add_token(TOKEN)
        fake.add_repo("acme/project", git_dir=git_http.root / "project.git")
        forge = {
            "kind": "github",
            "remote": url,
            "repository": "acme/project",
            "api_url": fake.url,
            "token_env": "UET_TEST_FORGE_TOKEN",
            "base": "main",
        }
        spec = chain().model_copy(update={"forge": ForgeSpec.model_validate(forge)})
        record = await run_phase(client, settings, run_input(spec, repo))
        # Published as it ended, but the worker has no token: the run is complete all the same.
        assert record.status == PhaseState.COMPLETED, record.reason
        assert record.publish_error is not None and not record.pull_requests
        assert "$UET_TEST_FORGE_TOKEN is not set on worker" in record.publish_error
        assert f"`uet pr {record.run_id}`" in record.publish_error
        uet = cli(client, settings)
        missing = await uet("pr", record.run_id)
        assert missing.returncode == 2 and "$UET_TEST_FORGE_TOKEN is not set" in missing.stderr
        monkeypatch.setenv("UET_TEST_FORGE_TOKEN", TOKEN)
        uet = cli(client, settings)  # the CLI's environment is taken when it is made
        opened = await uet("pr", record.run_id, "--json")
        assert opened.returncode == 0, opened.stderr
        (first,) = json.loads(opened.stdout)
        assert first["created"] is True
        updated = await uet("pr", record.run_id, "--json")
        assert updated.returncode == 0, updated.stderr
        (second,) = json.loads(updated.stdout)
        assert second["number"] == first["number"] and second["created"] is False
        assert len(pull_requests(fake)) == 1
        assert TOKEN not in opened.stdout + opened.stderr + updated.stderr


async def test_a_forge_busy_past_the_clients_retries_is_waited_out_by_the_activity(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    git_http: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A secondary rate limit outlasting the client's own three tries: the publish activity
    fails retryable with the forge's Retry-After as its next delay, Temporal tries it again,
    and the run still ends with its one pull request."""
    from temporalio.api.enums.v1 import EventType

    with FakeGitHub() as fake:
        repo: Path = make_repo({"README.md": "hi\n"})
        url: str = git_http.serve(repo, "project")
        git_http.tokens.add(TOKEN)
        fake.add_token(TOKEN)
        fake.add_repo("acme/project", git_dir=git_http.root / "project.git")
        monkeypatch.setenv("UET_TEST_FORGE_TOKEN", TOKEN)
        forge = {
            "kind": "github",
            "remote": url,
            "repository": "acme/project",
            "api_url": fake.url,
            "token_env": "UET_TEST_FORGE_TOKEN",
            "base": "main",
        }
        spec = chain().model_copy(update={"forge": ForgeSpec.model_validate(forge)})
        fake.secondary_limit(retry_after=1, times=4)
        record = await run_phase(client, settings, run_input(spec, repo))
        assert record.status == PhaseState.COMPLETED, record.reason
        assert record.publish_error is None
        (pr,) = record.pull_requests
        assert pr.created and len(pull_requests(fake)) == 1
        history = await client.get_workflow_handle(record.workflow_id).fetch_history()
        scheduled = {
            e.event_id
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and e.activity_task_scheduled_event_attributes.activity_type.name == "publish"
        }
        (attempt,) = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id in scheduled
        ]
        assert attempt == 2  # the second attempt of the activity published
