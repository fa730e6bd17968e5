"""The GitHub client (activities/lib/forges/github.py) against the fake GitHub
(tests/fakes/forges/github.py), whose pull requests need branches really pushed to a local
bare repository; and the shared HTTP plumbing's error lines, retries and redaction."""

from __future__ import annotations

import logging
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import httpx
import pytest
from fakes.forges.github import FakeGitHub

from activities.lib.forges.base import ForgeError, PullRequest
from activities.lib.forges.github import GitHubForge
from activities.lib.forges.http import ApiClient

TOKEN = "ghp_S3cretTokenValue0123456789abcdefXYZ"
READ_ONLY = "ghp_ReadOnlyToken0123456789abcdefXYZ"
REPO = "acme/widgets"


def git(*args: str, cwd: Path | None = None) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


class Remote:
    """A bare repository (what the fake reads) and a clone to push branches from."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "widgets.git"
        self.work = root / "work"
        git("init", "-q", "--bare", "-b", "main", str(self.bare))
        git("init", "-q", "-b", "main", str(self.work))
        self.commit("README")
        git("remote", "add", "origin", str(self.bare), cwd=self.work)
        git("push", "-q", "origin", "main", cwd=self.work)

    def commit(self, name: str) -> None:
        (self.work / name).write_text(f"{name}\n")
        git("add", name, cwd=self.work)
        git("commit", "-q", "-m", name, cwd=self.work)

    def push_branch(self, branch: str, *, start: str = "main") -> None:
        git("checkout", "-q", "-B", branch, start, cwd=self.work)
        self.commit(f"{branch.replace('/', '_')}.txt")
        git("push", "-q", "origin", branch, cwd=self.work)
        git("checkout", "-q", "main", cwd=self.work)


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return Remote(tmp_path)


@pytest.fixture
def fake(remote: Remote) -> Iterator[FakeGitHub]:
    with FakeGitHub() as gh:
        gh.add_token(TOKEN, login="uet-bot")
        gh.add_token(READ_ONLY, login="reader", write=False)
        gh.add_repo(REPO, remote.bare, collaborators=["alice", "bob"])
        yield gh


class Sleeps:
    """The client's injected sleep: records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def forge(fake: FakeGitHub, sleeps: Sleeps) -> AsyncIterator[GitHubForge]:
    client = GitHubForge(REPO, TOKEN, fake.url, sleep=sleeps)
    yield client
    await client.aclose()


async def failure(call: Awaitable[object]) -> ForgeError:
    try:
        await call
    except ForgeError as exc:
        return exc
    raise AssertionError("no ForgeError")


# -- pull requests ----------------------------------------------------------------------------


async def test_open_find_update(forge: GitHubForge, fake: FakeGitHub, remote: Remote) -> None:
    remote.push_branch("uet/run-1")
    remote.push_branch("develop")
    assert await forge.find_pull_request("uet/run-1", "main") is None

    pull = await forge.open_pull_request("uet/run-1", "main", "Run 1", "the report")
    assert pull == PullRequest(
        number=1,
        url=f"{fake.url}/acme/widgets/pull/1",
        head="uet/run-1",
        base="main",
        state="open",
        title="Run 1",
        body="the report",
    )
    assert await forge.find_pull_request("uet/run-1", "main") == pull
    assert await forge.find_pull_request("uet/run-1", "develop") is None
    # The find asks GitHub's way (head=OWNER:branch, state=open), with the version headers.
    finds = [r for r in fake.requests if r["method"] == "GET" and r["path"].endswith("/pulls")]
    assert finds[0]["query"]["head"] == "acme:uet/run-1"
    assert finds[0]["query"]["state"] == "open"
    assert all(r["api_version"] == "2022-11-28" for r in fake.requests)
    assert all(r["accept"] == "application/vnd.github+json" for r in fake.requests)

    updated = await forge.update_pull_request(1, title="Run 1 (done)", body="new report")
    assert (updated.title, updated.body, updated.base) == ("Run 1 (done)", "new report", "main")
    moved = await forge.update_pull_request(1, base="develop")
    assert moved.base == "develop" and moved.title == "Run 1 (done)"
    assert await forge.find_pull_request("uet/run-1", "develop") == moved
    assert await forge.update_pull_request(1) == moved  # nothing to change: just read

    error = await failure(forge.update_pull_request(1, base="no-such-branch"))
    assert error.status == 422
    assert str(error).endswith("422 Validation Failed: PullRequest base invalid")


async def test_open_twice_is_one_pull_request(
    forge: GitHubForge, fake: FakeGitHub, remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote.push_branch("uet/run-2")
    first = await forge.open_pull_request("uet/run-2", "main", "Run 2", "body")
    again = await forge.open_pull_request("uet/run-2", "main", "Run 2", "body")
    assert again == first
    assert sum(r["method"] == "POST" and r["path"].endswith("/pulls") for r in fake.requests) == 1

    # The fake rejects the duplicate the way GitHub does…
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        answer = await http.post(
            f"{fake.url}/repos/{REPO}/pulls",
            json={"title": "x", "head": "uet/run-2", "base": "main"},
        )
    assert answer.status_code == 422
    assert answer.json()["message"] == "Validation Failed"
    assert answer.json()["errors"] == [
        {
            "resource": "PullRequest",
            "code": "custom",
            "message": "A pull request already exists for acme:uet/run-2.",
        }
    ]

    # …and when a find misses one (opened meanwhile), the 422 sends the client to find it.
    real_find = forge.find_pull_request
    calls: list[str] = []

    async def blind_once(head: str, base: str) -> PullRequest | None:
        calls.append(head)
        return None if len(calls) == 1 else await real_find(head, base)

    monkeypatch.setattr(forge, "find_pull_request", blind_once)
    assert await forge.open_pull_request("uet/run-2", "main", "Run 2", "body") == first
    assert len(calls) == 2


async def test_fake_rejects_what_github_rejects(forge: GitHubForge, fake: FakeGitHub) -> None:
    unpushed = await failure(forge.open_pull_request("never-pushed", "main", "t", "b"))
    assert unpushed.status == 422
    assert str(unpushed) == (
        "GitHub: open a pull request never-pushed → main in acme/widgets: "
        "422 Validation Failed: PullRequest head invalid"
    )
    same = await failure(forge.open_pull_request("main", "main", "t", "b"))
    assert str(same).endswith("422 Validation Failed: No commits between main and main")
    no_base = await failure(forge.open_pull_request("main", "gone", "t", "b"))
    assert str(no_base).endswith("PullRequest base invalid")

    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        bad = await http.post(f"{fake.url}/repos/{REPO}/pulls", content=b"{not json")
        assert (bad.status_code, bad.json()["message"]) == (400, "Problems parsing JSON")
        wrong = await http.post(f"{fake.url}/repos/{REPO}/pulls", json={"head": 1, "base": "m"})
        assert wrong.status_code == 422 and wrong.json()["message"].startswith("Invalid request.")
        missing = await http.post(f"{fake.url}/repos/{REPO}/pulls", json={"title": "t"})
        assert [e["field"] for e in missing.json()["errors"]] == ["head", "base"]
        version = await http.get(
            f"{fake.url}/repos/{REPO}", headers={"X-GitHub-Api-Version": "2019-01-01"}
        )
        assert version.status_code == 400
        route = await http.get(f"{fake.url}/repos/{REPO}/nothing-here")
        assert (route.status_code, route.json()["message"]) == (404, "Not Found")
        anonymous = await httpx.AsyncClient().post(
            f"{fake.url}/repos/{REPO}/issues/1/comments", json={"body": "x"}
        )
        assert anonymous.status_code == 401


async def test_unknown_fields_are_ignored(fake: FakeGitHub, remote: Remote) -> None:
    remote.push_branch("extra")
    async with httpx.AsyncClient(headers={"Authorization": f"token {TOKEN}"}) as http:
        answer = await http.post(
            f"{fake.url}/repos/{REPO}/pulls",
            json={"title": "t", "head": "extra", "base": "main", "colour": "blue"},
        )
    assert answer.status_code == 201
    assert answer.headers["location"].endswith("/repos/acme/widgets/pulls/1")
    assert answer.json()["head"]["label"] == "acme:extra"


async def test_draft_labels_reviewers(forge: GitHubForge, fake: FakeGitHub, remote: Remote) -> None:
    remote.push_branch("uet/run-3")
    pull = await forge.open_pull_request(
        "uet/run-3", "main", "Run 3", "body", draft=True, labels=["uet", "report"],
        reviewers=["alice"],
    )  # fmt: skip
    assert pull.draft
    issue = fake.repo(REPO).issues[pull.number]
    assert [label["name"] for label in issue["labels"]] == ["uet", "report"]
    assert issue["pull"]["requested_reviewers"] == ["alice"]

    # Again (a retried activity): nothing doubles.
    await forge.open_pull_request(
        "uet/run-3", "main", "Run 3", "body", labels=["uet"], reviewers=["alice", "bob"]
    )
    assert [label["name"] for label in issue["labels"]] == ["uet", "report"]
    assert issue["pull"]["requested_reviewers"] == ["alice", "bob"]

    stranger = await failure(
        forge.open_pull_request("uet/run-3", "main", "Run 3", "body", reviewers=["mallory"])
    )
    assert stranger.status == 422
    assert "Reviews may only be requested from collaborators" in str(stranger)
    author = await failure(
        forge.open_pull_request("uet/run-3", "main", "Run 3", "body", reviewers=["uet-bot"])
    )
    assert str(author).endswith("Review cannot be requested from pull request author.")


# -- issues and comments ------------------------------------------------------------------


async def test_issues_pages_filters(fake: FakeGitHub, remote: Remote, sleeps: Sleeps) -> None:
    v1 = fake.add_milestone(REPO, "v1")
    fake.add_milestone(REPO, "v2")
    numbers = [
        fake.add_issue(REPO, f"issue {i}", f"body {i}", labels=["uet"] if i % 2 else [])
        for i in range(5)
    ]
    fake.add_issue(REPO, "in v1", None, labels=["uet", "bug"], milestone=v1)
    fake.add_issue(REPO, "closed", "", state="closed", labels=["uet"])
    remote.push_branch("feature")
    forge = GitHubForge(REPO, TOKEN, fake.url, per_page=2, sleep=sleeps)
    try:
        await forge.open_pull_request("feature", "main", "a pull request", "")
        fake.requests.clear()
        issues = await forge.list_issues()
        # 6 open issues and the pull request: 4 pages of 2, the pull request left out.
        assert [i.title for i in issues] == ["in v1", *(f"issue {i}" for i in range(4, -1, -1))]
        pages = [r for r in fake.requests if r["path"].endswith("/issues")]
        assert len(pages) == 4 and pages[-1]["query"]["page"] == "4"
        v1_issue = issues[0]
        assert v1_issue.labels == ("uet", "bug") and v1_issue.milestone == "v1"
        assert v1_issue.body == "" and v1_issue.url == f"{fake.url}/acme/widgets/issues/6"

        labelled = await forge.list_issues(label="uet")
        assert [i.number for i in labelled] == [6, numbers[3], numbers[1]]
        assert [i.title for i in await forge.list_issues(label="uet,bug")] == ["in v1"]
        assert [i.title for i in await forge.list_issues(milestone="v1")] == ["in v1"]
        assert [i.title for i in await forge.list_issues(milestone=str(v1))] == ["in v1"]
        assert [i.title for i in await forge.list_issues(milestone="*")] == ["in v1"]
        assert len(await forge.list_issues(milestone="none")) == 5
        assert await forge.list_issues(milestone="v2") == []
        closed = await forge.list_issues(state="closed", label="uet")
        assert [(i.title, i.state) for i in closed] == [("closed", "closed")]
        assert len(await forge.list_issues(state="all")) == 7

        unknown = await failure(forge.list_issues(milestone="v9"))
        assert str(unknown) == "GitHub: acme/widgets has no milestone titled 'v9'"

        got = await forge.get_issue(numbers[2])
        assert got is not None and (got.title, got.body) == ("issue 2", "body 2")
        assert await forge.get_issue(999) is None
        assert await forge.get_issue(8) is None  # the pull request
    finally:
        await forge.aclose()


async def test_comments(fake: FakeGitHub, sleeps: Sleeps) -> None:
    number = fake.add_issue(REPO, "plan me", "")
    fake.add_comment(REPO, number, "a person's comment", author="alice")
    forge = GitHubForge(REPO, TOKEN, fake.url, per_page=2, sleep=sleeps)
    try:
        first = await forge.add_comment(number, "uet: run 1 started")
        await forge.add_comment(number, "uet: second")
        listed = await forge.list_comments(number)
        assert [c.body for c in listed] == [
            "a person's comment",
            "uet: run 1 started",
            "uet: second",
        ]
        updated = await forge.update_comment(number, first.id, "uet: run 1 done")
        assert updated.id == first.id and updated.body == "uet: run 1 done"
        assert [c.body for c in await forge.list_comments(number)][1] == "uet: run 1 done"
        missing = await failure(forge.update_comment(number, 42, "x"))
        assert missing.status == 404
        assert await failure(forge.list_comments(999)) is not None
    finally:
        await forge.aclose()


# -- error kinds ----------------------------------------------------------------------------


async def test_bad_credentials(fake: FakeGitHub, sleeps: Sleeps) -> None:
    forge = GitHubForge(REPO, "ghp_wrong_token_value", fake.url, sleep=sleeps)
    error = await failure(forge.list_issues())
    await forge.aclose()
    assert error.status == 401 and not error.retryable
    assert str(error) == (
        "GitHub: list the issues of acme/widgets: 401 Bad credentials: the token is invalid "
        "or expired; check the token in $GITHUB_TOKEN"
    )
    assert error.details["documentation_url"] == "https://docs.github.com/rest"


async def test_missing_permission(fake: FakeGitHub, sleeps: Sleeps) -> None:
    number = fake.add_issue(REPO, "x", "")
    forge = GitHubForge(REPO, READ_ONLY, fake.url, sleep=sleeps)
    assert len(await forge.list_issues()) == 1  # reading is allowed
    error = await failure(forge.add_comment(number, "hello"))
    await forge.aclose()
    assert error.status == 403 and not error.retryable
    assert str(error) == (
        "GitHub: comment on #1 in acme/widgets: 403 Resource not accessible by personal access "
        "token: the token lacks the permission this needs (or the repository forbids it)"
    )


async def test_not_found(fake: FakeGitHub, sleeps: Sleeps) -> None:
    forge = GitHubForge("acme/nothing", TOKEN, fake.url, sleep=sleeps)
    error = await failure(forge.list_issues())
    await forge.aclose()
    assert error.status == 404 and not error.retryable
    assert str(error) == (
        "GitHub: list the issues of acme/nothing: 404 Not Found: the repository or object does "
        "not exist, or the token in $GITHUB_TOKEN cannot see it"
    )
    fake.add_repo("acme/private", private=True)
    fake.add_token("ghp_elsewhere_only", repos=["acme/widgets"])
    forge = GitHubForge("acme/private", "ghp_elsewhere_only", fake.url, sleep=sleeps)
    hidden = await failure(forge.list_issues())
    await forge.aclose()
    assert hidden.status == 404  # GitHub does not say a repository exists to those who can't see it


@pytest.mark.parametrize("status", [403, 429])
async def test_primary_rate_limit(fake: FakeGitHub, sleeps: Sleeps, status: int) -> None:
    fake.rate_limit(TOKEN, remaining=1, reset_in=1800, status=status)
    forge = GitHubForge(REPO, TOKEN, fake.url, sleep=sleeps)
    await forge.list_issues()  # the last request left
    before = time.time()
    error = await failure(forge.list_issues())
    after = time.time()
    await forge.aclose()
    assert error.status == status and error.retryable
    wait = error.retry_after_s
    assert wait is not None and 1790 <= wait <= 1800
    # The clock time it names is the response's moment plus the wait: within the call.
    expected = {
        f"GitHub: list the issues of acme/widgets: {status} rate limit exceeded "
        f"(limit 5000, core): resets at {time.strftime('%H:%M:%S', time.localtime(t + wait))} "
        f"local time, in {wait:g} s"
        for t in (before, after)
    }
    assert str(error) in expected
    assert sleeps.taken == []  # half an hour is the activity's retry policy's wait, not ours
    assert error.details["rate_limit"] == {
        "limit": "5000",
        "remaining": "0",
        "reset": float(fake.tokens[TOKEN].reset),
        "used": "5000",
        "resource": "core",
    }


async def test_secondary_rate_limit_is_retried(
    forge: GitHubForge, fake: FakeGitHub, sleeps: Sleeps
) -> None:
    fake.add_issue(REPO, "x", "")
    fake.secondary_limit(retry_after=3)
    assert len(await forge.list_issues()) == 1
    assert sleeps.taken == [3.0]
    fake.secondary_limit(retry_after=60, times=5)
    error = await failure(forge.list_issues())
    assert error.status == 403 and error.retry_after_s == 60
    assert (
        str(error)
        == "GitHub: list the issues of acme/widgets: 403 secondary rate limit: retry in 60 s"
    )
    fake.faults.clear()


async def test_server_errors(forge: GitHubForge, fake: FakeGitHub, sleeps: Sleeps) -> None:
    fake.add_issue(REPO, "x", "")
    fake.fail(502, times=2)
    assert len(await forge.list_issues()) == 1  # the third attempt answered
    assert sleeps.taken == [1.0, 2.0]

    sleeps.taken.clear()
    fake.fail(503, times=10)
    error = await failure(forge.list_issues())
    assert error.status == 503 and error.retryable and error.retry_after_s == 4.0
    assert str(error) == (
        "GitHub: list the issues of acme/widgets: 503 Service Unavailable (server error); "
        "retry in 4 s (after 3 attempts)"
    )
    assert sleeps.taken == [1.0, 2.0]
    fake.faults.clear()

    # A POST that may have been acted on is not repeated here (no second comment).
    sleeps.taken.clear()
    fake.fail(502, method="POST")
    posted = await failure(forge.add_comment(1, "once"))
    assert posted.retryable and sleeps.taken == [] and fake.comments == {}
    # Retry-After on a 5xx is honoured.
    fake.fail(503, headers={"retry-after": "5"})
    await forge.list_issues()
    assert sleeps.taken == [5.0]


async def test_unreachable(sleeps: Sleeps) -> None:
    with socket.socket() as sock:  # a loopback port nothing listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    forge = GitHubForge(REPO, TOKEN, f"http://127.0.0.1:{port}", sleep=sleeps)
    error = await failure(forge.list_issues())
    await forge.aclose()
    assert error.status is None and error.retryable
    assert str(error).startswith(
        "GitHub: list the issues of acme/widgets: could not reach 127.0.0.1"
    )
    assert sleeps.taken == [1.0, 2.0]


async def test_next_link_to_another_host_is_refused(sleeps: Sleeps) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        link = '<https://evil.example/repos/acme/widgets/issues?page=2>; rel="next"'
        return httpx.Response(200, json=[], headers={"Link": link})

    api = ApiClient(
        "https://api.github.com", forge="GitHub", token=TOKEN, token_env="GITHUB_TOKEN",
        sleep=sleeps, transport=httpx.MockTransport(answer),
    )  # fmt: skip
    error = await failure(api.paginate("repos/acme/widgets/issues"))
    await api.aclose()
    assert "refusing to follow a link to evil.example" in str(error)


async def test_gitlab_style_next_page(sleeps: Sleeps) -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        page = request.url.params.get("page")
        seen.append(page)
        following = {None: "2", "2": "3", "3": ""}[page]
        return httpx.Response(200, json=[page or "1"], headers={"X-Next-Page": following})

    api = ApiClient(
        "https://gitlab.example/api/v4", forge="GitLab", token=TOKEN, token_env="GITLAB_TOKEN",
        auth_header="PRIVATE-TOKEN", auth_scheme=None, sleep=sleeps,
        transport=httpx.MockTransport(answer),
    )  # fmt: skip
    assert await api.paginate("projects/a%2Fb/issues", params={"per_page": 1}) == ["1", "2", "3"]
    await api.aclose()
    assert seen == [None, "2", "3"]


async def test_token_never_shown(
    fake: FakeGitHub, remote: Remote, sleeps: Sleeps, caplog: pytest.LogCaptureFixture
) -> None:
    """Every error kind: the token is in no message, no details, no log record."""
    caplog.set_level(logging.DEBUG)
    remote.push_branch("t")
    errors: list[ForgeError] = []
    forge = GitHubForge(REPO, TOKEN, fake.url, sleep=sleeps)
    try:
        errors.append(await failure(forge.open_pull_request("nope", "main", "t", "b")))  # 422
        errors.append(await failure(forge.update_comment(1, 5, "x")))  # 404
        fake.fail(500, times=3)
        errors.append(await failure(forge.list_issues()))  # 5xx
        fake.secondary_limit(retry_after=99)
        errors.append(await failure(forge.list_issues()))  # secondary limit
        fake.rate_limit(TOKEN, remaining=0)
        errors.append(await failure(forge.list_issues()))  # primary limit
    finally:
        await forge.aclose()
    for token in ("ghp_wrong_but_secret_0123", READ_ONLY):
        other = GitHubForge(REPO, token, fake.url, sleep=sleeps)
        errors.append(await failure(other.add_comment(1, "x")))  # 401, 403
        await other.aclose()
    assert {e.status for e in errors} == {401, 403, 404, 422, 500}
    texts = [f"{e} {e!r} {e.details}" for e in errors] + [caplog.text]
    texts += [r.getMessage() for r in caplog.records]
    for secret in (TOKEN, READ_ONLY, "ghp_wrong_but_secret_0123"):
        assert all(secret not in text for text in texts)
    assert caplog.records  # httpx did log its requests: the check above looked at something


async def test_redact_when_the_forge_echoes_the_token(sleeps: Sleeps) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        header = request.headers["authorization"]
        return httpx.Response(422, json={"message": f"bad header {header}", "errors": [header]})

    api = ApiClient(
        "https://api.github.com", forge="GitHub", token=TOKEN, token_env="GITHUB_TOKEN",
        sleep=sleeps, transport=httpx.MockTransport(answer),
    )  # fmt: skip
    error = await failure(api.request_json("POST", "repos/a/b/pulls", json={}))
    await api.aclose()
    assert TOKEN not in f"{error} {error.details}"
    assert str(error) == (
        "GitHub: POST /repos/a/b/pulls: 422 bad header Bearer <token>: Bearer <token>"
    )
