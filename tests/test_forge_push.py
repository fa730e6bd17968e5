"""Pushing uet's branches to a forge: a real ``git push`` to the real ``git http-backend``
behind a loopback server that wants a token (tests/git_http.py), as GitHub, GitLab and Gitea
do. Only ``uet/…`` branches, force-pushed; the token only in that git's environment."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from git_http import GitHttpServer
from temporalio.exceptions import ApplicationError

from activities.lib.forges.push import push_branches, push_env
from activities.lib.git import Git, open_repository

TOKEN = "tok-3f9c2a7be41d5e08"
BRANCH = "refs/heads/uet/run-1/integration"


@dataclass
class Setup:
    path: Path
    repo: Git
    url: str
    server: GitHttpServer


@pytest.fixture
async def setup(make_repo: Any, git_http: GitHttpServer) -> Setup:
    path: Path = make_repo({"README.md": "hello\n"})
    git(path, "branch", "feature")
    git(path, "remote", "add", "origin", "https://forge.invalid/owner/repo.git")
    url = git_http.serve(path, "project")
    git_http.tokens.add(TOKEN)
    return Setup(path, await open_repository(path), url, git_http)


def commit(path: Path, name: str) -> str:
    """A new commit on ``feature`` (a branch uet must not touch, so the test moves it)."""
    git(path, "checkout", "-q", "feature")
    (path / name).write_text(f"{name}\n")
    git(path, "add", name)
    git(path, "commit", "-q", "-m", name)
    return git(path, "rev-parse", "HEAD")


def user_state(path: Path) -> tuple[str, str]:
    """The user's refs (every one, remote-tracking ones included) and remotes."""
    refs = git(path, "for-each-ref", "--format=%(refname) %(objectname)")
    return refs, git(path, "remote", "-v")


def credentials(kind_user: str, token: str = TOKEN) -> str:
    return base64.b64encode(f"{kind_user}:{token}".encode()).decode()


async def test_a_push_lands_and_a_second_one_force_updates(setup: Setup) -> None:
    before = user_state(setup.path)
    first = git(setup.path, "rev-parse", "main")
    pushed = await push_branches(
        setup.repo, setup.url, [("main", "uet/run-1/integration")], token=TOKEN, kind="github"
    )
    assert pushed == {BRANCH: first}
    assert setup.server.refs("project")[BRANCH] == first
    assert setup.server.pushes[-1].updated == {BRANCH: first}
    # The token went over the wire as Basic x-access-token:TOKEN, GitHub's form.
    assert f"Basic {credentials('x-access-token')}" in setup.server.authorizations

    # A commit that does not descend from the first: only a force-push can land it.
    git(setup.path, "checkout", "-q", "--orphan", "other")
    git(setup.path, "commit", "-q", "-m", "unrelated")
    second = git(setup.path, "rev-parse", "HEAD")
    git(setup.path, "checkout", "-q", "main")
    git(setup.path, "branch", "-D", "other")
    pushed = await push_branches(
        setup.repo, setup.url, [(second, BRANCH)], token=TOKEN, kind="github"
    )
    assert pushed == {BRANCH: second}
    assert setup.server.refs("project")[BRANCH] == second
    # Nothing else on the forge moved; nothing of the user's moved, no remote was added.
    assert setup.server.refs("project")["refs/heads/main"] == first
    assert user_state(setup.path) == before


async def test_several_branches_go_in_one_push(setup: Setup) -> None:
    feature = commit(setup.path, "f.txt")
    main = git(setup.path, "rev-parse", "main")
    pushed = await push_branches(
        setup.repo,
        setup.url,
        [("main", "uet/r/integration"), ("refs/heads/feature", "refs/heads/uet/r/ws/a")],
        token=TOKEN,
        kind="gitea",
    )
    assert pushed == {"refs/heads/uet/r/integration": main, "refs/heads/uet/r/ws/a": feature}
    assert [p.updated for p in setup.server.pushes] == [pushed]


@pytest.mark.parametrize(
    ("kind", "user"), [("github", "x-access-token"), ("gitlab", "oauth2"), ("gitea", "oauth2")]
)
async def test_each_forge_gets_its_basic_username(setup: Setup, kind: str, user: str) -> None:
    await push_branches(setup.repo, setup.url, [("main", "uet/k")], token=TOKEN, kind=kind)
    sent = {a for a in setup.server.authorizations if a}
    assert sent == {f"Basic {credentials(user)}"}


@pytest.mark.parametrize("token", ["wrong-token-value", None])
async def test_a_refused_or_missing_token_is_one_line_and_pushes_nothing(
    setup: Setup, token: str | None
) -> None:
    refs = setup.server.refs("project")
    with pytest.raises(ApplicationError) as raised:
        await push_branches(
            setup.repo,
            setup.url,
            [("main", "uet/run-1/integration")],
            token=token,
            kind="github",
            token_env="UET_FORGE_TOKEN",
        )
    error = raised.value
    assert error.type == "ForgeAuthFailed" and error.non_retryable
    assert "\n" not in error.message
    assert "$UET_FORGE_TOKEN" in error.message
    assert setup.url in error.message
    if token is not None:
        assert error.message == (
            f"the forge refused the token in $UET_FORGE_TOKEN for {setup.url} (HTTP 401/403); "
            "check it has write access"
        )
        assert token not in error.message
    assert setup.server.refs("project") == refs
    assert setup.server.pushes == []


@pytest.mark.parametrize(
    "dest",
    [
        "main",
        "refs/heads/main",
        "feature",
        "refs/tags/uet/run-1",
        "refs/heads/uetx/a",
        "uet",
        "uet/",
        "uet/../main",
        "uet/a..b",
        "uet/a:b",
        "uet/*",
        "uet/a.lock",
        "uet/.hidden",
        "uet/a b",
    ],
)
async def test_a_branch_outside_uet_is_refused_before_git_runs(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, dest: str
) -> None:
    started: list[tuple[str, ...]] = []

    async def never(*args: str, **kwargs: Any) -> None:
        started.append(args)
        raise AssertionError("git ran")

    monkeypatch.setattr(asyncio, "create_subprocess_exec", never)
    with pytest.raises(ApplicationError) as raised:
        await push_branches(
            setup.repo, setup.url, [("main", "uet/ok"), ("main", dest)], token=TOKEN, kind="github"
        )
    assert raised.value.type == "ForgePushRefused" and raised.value.non_retryable
    assert repr(dest) in raised.value.message
    assert started == []
    assert setup.server.requests == []


async def test_an_unreachable_forge_is_retryable(setup: Setup) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once this closes
    url = f"http://127.0.0.1:{port}/project.git"
    with pytest.raises(ApplicationError) as raised:
        await push_branches(setup.repo, url, [("main", "uet/a")], token=TOKEN, kind="github")
    assert raised.value.type == "ForgeUnreachable" and not raised.value.non_retryable
    assert raised.value.message.startswith(f"pushing to {url} failed: ")
    assert "\n" not in raised.value.message and TOKEN not in raised.value.message


async def test_a_rejected_push_says_why(setup: Setup) -> None:
    """Anything else (here the forge refuses a ref update) is one line with git's reason."""
    bare = setup.server.root / "project.git"
    git(bare, "config", "receive.denyNonFastForwards", "true")
    await push_branches(setup.repo, setup.url, [("main", "uet/a")], token=TOKEN, kind="github")
    git(setup.path, "checkout", "-q", "--orphan", "other")
    git(setup.path, "commit", "-q", "-m", "unrelated")
    with pytest.raises(ApplicationError) as raised:
        await push_branches(setup.repo, setup.url, [("other", "uet/a")], token=TOKEN, kind="github")
    assert raised.value.type == "ForgePushFailed" and raised.value.non_retryable
    assert "\n" not in raised.value.message
    assert "non-fast-forward" in raised.value.message, raised.value.message


def test_ssh_urls_get_no_token(setup: Setup) -> None:
    for url in ("ssh://git@forge.invalid/o/r.git", "git@forge.invalid:o/r.git"):
        assert push_env(setup.repo, url, TOKEN, "github") == {}


async def test_the_token_is_only_in_that_gits_environment(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Not in any process's argv (readable by every user of the host), not in any file of
    the repository, not in a message, not in the logs: only in a GIT_CONFIG_VALUE_n of the
    one ``git push``."""
    caplog.set_level(logging.DEBUG)
    secrets = (TOKEN, credentials("x-access-token"))
    spawned: list[tuple[tuple[str, ...], Mapping[str, str]]] = []
    real = asyncio.create_subprocess_exec

    async def recording(*args: str, **kwargs: Any) -> asyncio.subprocess.Process:
        spawned.append((args, dict(kwargs.get("env") or {})))
        return await real(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", recording)
    before = user_state(setup.path)

    await push_branches(setup.repo, setup.url, [("main", "uet/a")], token=TOKEN, kind="github")
    messages = []
    for token in (TOKEN, "not-the-token-123"):
        # A refused token (this one and the real one: both are masked in what comes back).
        setup.server.tokens.discard(TOKEN)
        with pytest.raises(ApplicationError) as raised:
            await push_branches(
                setup.repo, setup.url, [("main", "uet/b")], token=token, kind="github"
            )
        messages.append(str(raised.value))
        messages.append(repr(raised.value))

    pushes = [(args, env) for args, env in spawned if "push" in args]
    assert len(pushes) == 3
    for args, env in spawned:
        assert not any(s in arg for s in secrets for arg in args), args
        for name, value in env.items():
            assert TOKEN not in value, name
            if secrets[1] in value:
                assert name.startswith("GIT_CONFIG_VALUE_"), name
    header = [v for v in pushes[0][1].values() if secrets[1] in v]
    assert header == [f"Authorization: Basic {secrets[1]}"]
    assert pushes[0][1]["GIT_TERMINAL_PROMPT"] == "0"
    # Only the push carried it, and it asked no credential helper.
    for args, env in spawned:
        if "push" not in args:
            assert not any(secrets[1] in v for v in env.values())
    keys = {v for k, v in pushes[0][1].items() if k.startswith("GIT_CONFIG_KEY_")}
    assert "credential.helper" in keys

    for file in (setup.path / ".git").rglob("*"):
        if file.is_file():
            data = file.read_bytes()
            assert not any(s.encode() in data for s in secrets), file
    for text in (*messages, caplog.text):
        assert not any(s in text for s in secrets), text
    assert user_state(setup.path) == before


async def test_the_users_credentials_and_headers_are_neither_used_nor_changed(
    setup: Setup, tmp_path: Path
) -> None:
    """A repository whose config has a credential helper holding a good token and an
    Authorization header of its own (as actions/checkout leaves one): a push sends only
    its token (a refused one is not retried with the stored credentials) and the helper's
    store is not written to."""
    store = tmp_path / "credentials"
    origin = setup.url.split("/project.git")[0]
    store.write_text(f"{origin.replace('://', '://x-access-token:' + TOKEN + '@')}\n")
    git(setup.path, "config", "credential.helper", f"store --file={store}")
    other = base64.b64encode(b"someone:else").decode()
    git(setup.path, "config", f"http.{origin}/.extraheader", f"AUTHORIZATION: basic {other}")
    stored = store.read_bytes()
    config = (setup.path / ".git" / "config").read_bytes()

    await push_branches(setup.repo, setup.url, [("main", "uet/a")], token=TOKEN, kind="github")
    assert set(setup.server.authorizations) == {f"Basic {credentials('x-access-token')}"}
    with pytest.raises(ApplicationError) as raised:
        await push_branches(
            setup.repo, setup.url, [("main", "uet/b")], token="a-wrong-token", kind="github"
        )
    assert raised.value.type == "ForgeAuthFailed"
    assert "refs/heads/uet/b" not in setup.server.refs("project")
    assert store.read_bytes() == stored
    assert (setup.path / ".git" / "config").read_bytes() == config
