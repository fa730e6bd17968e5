"""The GitLab and Gitea/Forgejo clients against fakes written from the forges' API
descriptions (tests/fakes/forges/gitlab.py, gitea.py): merge/pull requests found before they
are opened, drafts, labels, reviewers, issues over several pages, comments, one-line errors,
retries, and a token that never shows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fakes.forges.common import Fault
from fakes.forges.gitea import FakeGitea
from fakes.forges.gitlab import FakeGitLab

from activities.lib.forges.base import ForgeError
from activities.lib.forges.gitea import GiteaForge
from activities.lib.forges.gitlab import GitLabForge

TOKEN = "tok-SECRET-0123456789abcdef"
GL_REPO = "team/sub/app"
GT_REPO = "team/app"


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@dataclass
class Env:
    """One fake forge and a client of it, with what the tests need to seed either."""

    kind: str
    fake: Any  # FakeGitLab | FakeGitea
    url: str
    repo: str
    sleeps: Sleeps

    def client(self, token: str = TOKEN, repo: str | None = None) -> GitLabForge | GiteaForge:
        if self.kind == "gitlab":
            return GitLabForge(repo or self.repo, token, self.url, sleep=self.sleeps)
        return GiteaForge(repo or self.repo, token, self.url, sleep=self.sleeps)

    def issue(self, title: str, **kwargs: Any) -> int:
        if self.kind == "gitlab":
            if kwargs.get("state") == "closed":
                kwargs["state"] = "closed"
            return int(self.fake.add_issue(self.repo, title, **kwargs)["iid"])
        return int(self.fake.add_issue(self.repo, title, **kwargs)["number"])

    def close_pull(self, number: int, state: str) -> None:
        if self.kind == "gitlab":
            self.fake.set_mr_state(self.repo, number, state)
        else:
            self.fake.set_pull_state(self.repo, number, state)


@pytest.fixture(params=["gitlab", "gitea"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    fake: FakeGitLab | FakeGitea
    if request.param == "gitlab":
        fake = FakeGitLab(tmp_path)
        fake.add_project(GL_REPO)
        fake.push_branch(GL_REPO, "uet/run-1")
        repo = GL_REPO
    else:
        fake = FakeGitea(tmp_path)
        fake.add_repo(GT_REPO)
        fake.push_branch(GT_REPO, "uet/run-1")
        fake.add_label(GT_REPO, "uet")
        fake.add_label(GT_REPO, "automated")
        repo = GT_REPO
    fake.add_token(TOKEN)
    fake.add_user("alice")
    with fake.serve() as url:
        yield Env(request.param, fake, url, repo, Sleeps())


def _posts(env: Env, suffix: str) -> int:
    return sum(1 for s in env.fake.seen if s.method == "POST" and s.path.endswith(suffix))


# -- pull / merge requests ----------------------------------------------------------------------


async def test_open_find_update(env: Env) -> None:
    forge = env.client()
    try:
        assert await forge.find_pull_request("uet/run-1", "main") is None
        pr = await forge.open_pull_request("uet/run-1", "main", "Run 1", "the report")
        assert (pr.number, pr.head, pr.base, pr.state, pr.title, pr.body, pr.draft) == (
            1, "uet/run-1", "main", "open", "Run 1", "the report", False,
        )  # fmt: skip
        assert pr.url.endswith(("/-/merge_requests/1", "/pulls/1"))
        assert await forge.find_pull_request("uet/run-1", "main") == pr
        updated = await forge.update_pull_request(pr.number, body="the new report")
        assert (updated.body, updated.title) == ("the new report", "Run 1")
        renamed = await forge.update_pull_request(pr.number, title="Run 1 (again)")
        assert renamed.title == "Run 1 (again)"
        assert (await forge.update_pull_request(pr.number)).body == "the new report"
    finally:
        await forge.aclose()


async def test_a_second_open_finds_the_first_and_the_fake_refuses_a_duplicate(env: Env) -> None:
    forge = env.client()
    try:
        first = await forge.open_pull_request("uet/run-1", "main", "Run 1", "a")
        again = await forge.open_pull_request("uet/run-1", "main", "Run 1", "a")
        assert again.number == first.number
        creates = "/merge_requests" if env.kind == "gitlab" else "/pulls"
        assert _posts(env, creates) == 1
        # The forge itself refuses a second one (what the find-first avoids).
        async with httpx.AsyncClient() as http:
            if env.kind == "gitlab":
                answer = await http.post(
                    f"{env.url}/projects/team%2Fsub%2Fapp/merge_requests",
                    headers={"PRIVATE-TOKEN": TOKEN},
                    json={"source_branch": "uet/run-1", "target_branch": "main", "title": "x"},
                )
                assert answer.status_code == 409
                assert answer.json() == {
                    "message": [
                        "Another open merge request already exists for this source branch: !1"
                    ]
                }
            else:
                answer = await http.post(
                    f"{env.url}/repos/team/app/pulls",
                    headers={"Authorization": f"token {TOKEN}"},
                    json={"head": "uet/run-1", "base": "main", "title": "x"},
                )
                assert answer.status_code == 409
                assert answer.json()["message"].startswith(
                    "pull request already exists for these targets"
                )
    finally:
        await forge.aclose()


async def test_a_closed_or_merged_one_is_not_found_and_a_new_one_opens(env: Env) -> None:
    forge = env.client()
    try:
        first = await forge.open_pull_request("uet/run-1", "main", "Run 1", "a")
        env.close_pull(first.number, "merged")
        assert await forge.find_pull_request("uet/run-1", "main") is None
        second = await forge.open_pull_request("uet/run-1", "main", "Run 1", "b")
        assert second.number != first.number and second.state == "open"
    finally:
        await forge.aclose()


async def test_draft_labels_reviewers(env: Env) -> None:
    forge = env.client()
    try:
        pr = await forge.open_pull_request(
            "uet/run-1", "main", "Run 1", "r", draft=True, labels=["uet", "automated"],
            reviewers=["alice"],
        )  # fmt: skip
        assert pr.draft and pr.title == "Run 1"
        # A new title keeps the draft prefix, which is how both forges store a draft.
        assert (await forge.update_pull_request(pr.number, title="Run 1b")).draft
        if env.kind == "gitlab":
            mr = env.fake.projects[GL_REPO].merge_requests[pr.number]
            assert mr["title"] == "Draft: Run 1b"
            assert mr["labels"] == ["uet", "automated"]
            assert mr["reviewer_ids"] == [env.fake.users["alice"]["id"]]
        else:
            pull = env.fake.repos[GT_REPO].issues[pr.number]
            assert pull["title"] == "WIP: Run 1b"
            assert [label["name"] for label in pull["labels"]] == ["uet", "automated"]
            assert pull["pull"]["reviewers"] == ["alice"]
    finally:
        await forge.aclose()


async def test_an_unknown_reviewer_or_label_is_one_clear_line(env: Env) -> None:
    forge = env.client()
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.open_pull_request(
                "uet/run-1", "main", "t", "b", reviewers=["nobody"], labels=["nope"]
            )
        text = str(caught.value)
        assert "\n" not in text
        assert ("nobody" in text) if env.kind == "gitlab" else ("nope" in text)
    finally:
        await forge.aclose()


async def test_a_branch_that_was_never_pushed_is_refused(env: Env) -> None:
    forge = env.client()
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.open_pull_request("uet/never-pushed", "main", "t", "b")
        assert caught.value.status == (422 if env.kind == "gitlab" else 404)
    finally:
        await forge.aclose()


async def test_gitea_without_the_find_route_lists_open_pulls(tmp_path: Path) -> None:
    fake = FakeGitea(tmp_path, find_route=False)  # a server older than Gitea 1.22
    fake.add_repo(GT_REPO)
    fake.push_branch(GT_REPO, "uet/run-1")
    fake.add_token(TOKEN)
    with fake.serve() as url:
        forge = GiteaForge(GT_REPO, TOKEN, url)
        try:
            pr = await forge.open_pull_request("uet/run-1", "main", "Run 1", "a")
            assert (await forge.find_pull_request("uet/run-1", "main")) == pr
        finally:
            await forge.aclose()


# -- issues and comments ------------------------------------------------------------------------


async def test_issues_over_several_pages_with_filters(env: Env) -> None:
    for n in range(1, 121):  # more than one page of either forge's largest (100, 50)
        env.issue(
            f"issue {n}",
            labels=["uet"] if n % 2 else [],
            milestone="v1" if n % 3 == 0 else None,
        )
    env.issue("done", state="closed")
    forge = env.client()
    try:
        issues = await forge.list_issues()
        assert len(issues) == 120
        assert sorted(i.number for i in issues) == list(range(1, 121))
        first = next(i for i in issues if i.number == 3)
        assert (first.title, first.state, first.labels, first.milestone) == (
            "issue 3", "open", ("uet",), "v1",
        )  # fmt: skip
        assert first.url.endswith("/3")
        assert len(await forge.list_issues(label="uet")) == 60
        assert len(await forge.list_issues(milestone="v1")) == 40
        assert len(await forge.list_issues(label="uet", milestone="v1")) == 20
        assert [i.title for i in await forge.list_issues(state="closed")] == ["done"]
        assert len(await forge.list_issues(state="all")) == 121
        pages = [s for s in env.fake.seen if s.path.endswith("/issues") and s.method == "GET"]
        assert len(pages) > 5  # each list needed more than one page
        assert (await forge.get_issue(3)) == first
        assert await forge.get_issue(999) is None
    finally:
        await forge.aclose()


async def test_gitea_issues_leave_pull_requests_out(tmp_path: Path) -> None:
    fake = FakeGitea(tmp_path)
    fake.add_repo(GT_REPO)
    fake.push_branch(GT_REPO, "uet/run-1")
    fake.add_token(TOKEN)
    with fake.serve() as url:
        forge = GiteaForge(GT_REPO, TOKEN, url)
        try:
            await forge.open_pull_request("uet/run-1", "main", "a pull", "")
            fake.add_issue(GT_REPO, "an issue")
            assert [i.title for i in await forge.list_issues()] == ["an issue"]
            assert await forge.get_issue(1) is None  # number 1 is the pull request
        finally:
            await forge.aclose()


async def test_comments_add_list_update(env: Env) -> None:
    number = env.issue("work on this")
    if env.kind == "gitlab":  # a system note is no comment
        env.fake.add_note(GL_REPO, number, "changed the description", system=True)
    forge = env.client()
    try:
        assert await forge.list_comments(number) == []
        first = await forge.add_comment(number, "uet: run 1 started")
        second = await forge.add_comment(number, "a person's reply")
        assert [c.body for c in await forge.list_comments(number)] == [
            "uet: run 1 started", "a person's reply",
        ]  # fmt: skip
        updated = await forge.update_comment(number, first.id, "uet: run 1 done")
        assert (updated.id, updated.body) == (first.id, "uet: run 1 done")
        assert [c.id for c in await forge.list_comments(number)] == [first.id, second.id]
        assert (await forge.list_comments(number))[0].body == "uet: run 1 done"
    finally:
        await forge.aclose()


# -- errors, retries, the token -----------------------------------------------------------------


async def test_a_bad_token_is_one_line_that_names_where_the_token_lives(env: Env) -> None:
    if env.kind == "gitea":
        # Gitea reads an unknown token as nobody: a private repository is then not found,
        # and a write to a public one needs a token.
        env.fake.repos[GT_REPO].private = False
    forge = env.client(token="wrong-token-value")
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.add_comment(env.issue("x"), "hi")
        assert caught.value.status == 401
        text = str(caught.value)
        assert "\n" not in text and ("GITLAB_TOKEN" in text or "GITEA_TOKEN" in text)
        assert "wrong-token-value" not in text
        assert not caught.value.retryable
    finally:
        await forge.aclose()


async def test_missing_project_and_missing_scope(env: Env) -> None:
    forge = env.client(repo="team/nothing-here" if env.kind == "gitea" else "team/nothing")
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.list_issues()
        assert caught.value.status == 404 and "\n" not in str(caught.value)
    finally:
        await forge.aclose()
    env.fake.add_token("read-only-token", ["read_api"] if env.kind == "gitlab" else ["read:issue"])
    forge = env.client(token="read-only-token")
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.add_comment(env.issue("y"), "hi")
        assert caught.value.status == 403
        assert "\n" not in str(caught.value) and "read-only-token" not in str(caught.value)
    finally:
        await forge.aclose()


async def test_server_errors_and_rate_limits_are_retried(env: Env) -> None:
    env.issue("one")
    forge = env.client()
    try:
        env.fake.server_error(502, times=2, method="GET")
        assert len(await forge.list_issues()) == 1
        if env.kind == "gitlab":
            env.fake.rate_limit(times=1, reset_in=3)
        else:
            env.fake.rate_limit(times=1, retry_after=3)
        assert len(await forge.list_issues()) == 1
        assert len(env.sleeps.calls) == 3 and env.sleeps.calls[-1] > 0
        # Beyond the bounded attempts: a retryable error for the activity's own retry.
        env.fake.server_error(503, times=5, method="GET")
        with pytest.raises(ForgeError) as caught:
            await forge.list_issues()
        assert caught.value.retryable and caught.value.status == 503
        assert "\n" not in str(caught.value)
    finally:
        env.fake.faults.clear()
        await forge.aclose()


async def test_a_rate_limit_says_when_it_resets(env: Env) -> None:
    forge = env.client()
    try:
        env.fake.rate_limit(times=10)
        with pytest.raises(ForgeError) as caught:
            await forge.list_issues()
        assert caught.value.status == 429 and caught.value.retry_after_s
        assert "rate limit" in str(caught.value)
    finally:
        env.fake.faults.clear()
        await forge.aclose()


async def test_the_token_is_never_in_errors_or_logs(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # A forge that echoes the token back (old Gitea: "access token does not exist [sha: …]").
    env.fake.faults.push(Fault(401, {"message": f"access token does not exist [sha: {TOKEN}]"}))
    forge = env.client()
    try:
        with pytest.raises(ForgeError) as caught:
            await forge.list_issues()
        assert TOKEN not in str(caught.value)
        assert TOKEN not in repr(caught.value.details)
        env.fake.server_error(502, times=1)
        await forge.list_issues()
    finally:
        await forge.aclose()
    assert TOKEN not in caplog.text
    auth = "private-token" if env.kind == "gitlab" else "authorization"
    assert any(TOKEN in s.headers.get(auth, "") for s in env.fake.seen)  # it was sent


async def test_bad_repository_names_are_refused_before_any_request() -> None:
    with pytest.raises(ForgeError):
        GitLabForge("just-a-name", TOKEN)
    with pytest.raises(ForgeError):
        GiteaForge("a/b/c", TOKEN, "https://codeberg.org/api/v1")
    with pytest.raises(ForgeError):
        GiteaForge("a/b", TOKEN, "")
