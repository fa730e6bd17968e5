"""Repositories given by URL: a worker's own mirror, uet's refs pushed back with a lease, the
user's clone untouched until they fetch; a real ``git daemon`` on loopback as the remote."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, git_out, phase, run_input, run_phase, show
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from activities.lib.git import GitError
from activities.lib.remote_repo import is_url, local_path, mirror_dir, open_mirror
from runtime.settings import Settings
from schemas.refs import branch_ref, integration_branch
from schemas.run import PhaseState


def test_what_counts_as_a_url() -> None:
    for url in (
        "git://host/repo.git",
        "ssh://git@host:22/repo.git",
        "https://example.com/o/r.git",
        "file:///srv/git/r.git",
        "git@github.com:owner/repo.git",
    ):
        assert is_url(url), url
        assert local_path(url) is None
    for path in ("/srv/repo", "relative/repo", "./a:b", "C:/not/windows/here"):
        assert not is_url(path), path


def two_workstreams():  # type: ignore[no-untyped-def]
    return phase(
        workstreams=[
            {"workstream_id": "a", "execution_request": {"command": "echo one > a.txt"}},
            {
                "workstream_id": "b",
                "dependencies": ["a"],
                "execution_request": {"command": "echo two >> a.txt && echo new > b.txt"},
            },
        ]
    )


async def test_a_run_on_a_url_pushes_only_uets_refs_and_matches_a_local_run(
    client: Client, settings: Settings, worker: Worker, make_repo, git_daemon
) -> None:
    repo: Path = make_repo({"a.txt": "zero\n"})
    url: str = git_daemon(repo)
    served = git_daemon.root / "project.git"  # type: ignore[attr-defined]
    before = git_out(served, "for-each-ref", "--format=%(refname) %(objectname)")

    remote = await run_phase(client, settings, run_input(two_workstreams(), url))
    local = await run_phase(client, settings, run_input(two_workstreams(), repo))

    assert remote.status == PhaseState.COMPLETED, remote.reason
    assert local.status == PhaseState.COMPLETED, local.reason
    ref = branch_ref(integration_branch(remote.run_id))
    head = git_out(served, "rev-parse", ref)
    assert head == remote.head_sha
    # The same tree as the same phase run on the local path.
    assert git_out(served, "rev-parse", f"{head}^{{tree}}") == git_out(
        repo, "rev-parse", f"{local.head_sha}^{{tree}}"
    )
    assert show(served, head, "a.txt") == "one\ntwo"
    # Only uet's refs changed on the remote: the user's branch is where it was.
    after = git_out(served, "for-each-ref", "--format=%(refname) %(objectname)")
    assert set(before.splitlines()) <= set(after.splitlines())
    added = set(after.splitlines()) - set(before.splitlines())
    assert added and all(
        r.split()[0].startswith(("refs/heads/uet/", "refs/tags/uet/")) for r in added
    )
    # The local clone saw nothing of the URL run; the worker kept its own mirror.
    assert git_out(repo, "for-each-ref", f"refs/heads/uet/{remote.run_id}") == ""
    assert (mirror_dir(settings.home, url) / "HEAD").is_file()


async def test_a_second_mirror_fetches_what_the_first_pushed_and_leases_hold(
    make_repo, git_daemon, tmp_path: Path
) -> None:
    repo: Path = make_repo({"f.txt": "x\n"})
    url: str = git_daemon(repo)
    base = git_out(repo, "rev-parse", "HEAD")
    one = await open_mirror(tmp_path / "host-1", url)
    two = await open_mirror(tmp_path / "host-2", url)
    tree = await one.out("rev-parse", f"{base}^{{tree}}")
    commit = await one.commit_tree(tree, [base], "on host 1", 1_700_000_000)
    await one.update_ref("refs/heads/uet/r/integration", commit, "")
    # Host 2 has never seen the commit: naming it fetches it.
    two = await open_mirror(tmp_path / "host-2", url, [commit])
    assert await two.rev_parse("refs/heads/uet/r/integration") == commit
    # A lease that no longer holds is refused, whoever asks ...
    other = await two.commit_tree(tree, [commit], "on host 2", 1_700_000_001)
    with pytest.raises(GitError, match="expected"):
        await two.update_ref("refs/heads/uet/r/integration", other, base)
    # ... but the same move again (a retry of one that went through) is no error.
    await one.update_ref("refs/heads/uet/r/integration", commit, "")
    await two.update_ref("refs/heads/uet/r/integration", other, commit)
    await two.delete_refs(["refs/heads/uet/r/integration", "refs/heads/uet/r/never"])
    served = git_daemon.root / "project.git"  # type: ignore[attr-defined]
    assert git_out(served, "for-each-ref", "refs/heads/uet/") == ""


async def test_an_unknown_url_fails_for_good_and_a_dead_host_is_retried(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as missing:
        await open_mirror(tmp_path, f"file://{tmp_path}/nothing-here.git")
    assert missing.value.non_retryable and missing.value.type == "RepositoryNotFound"
    with pytest.raises(ApplicationError) as down:
        await open_mirror(tmp_path, "git://127.0.0.1:1/none.git")
    assert not down.value.non_retryable and down.value.type == "RemoteUnreachable"


async def test_the_cli_says_in_one_line_what_is_wrong_with_a_url(
    client: Client, settings: Settings, make_repo, git_daemon, tmp_path: Path
) -> None:
    repo: Path = make_repo({"f.txt": "x\n"})
    url: str = git_daemon(repo)
    spec = tmp_path / "phase.yaml"
    spec.write_text(
        "phase_id: PH-URL\nbase_ref: nope\nworkstreams:\n"
        "  - workstream_id: a\n    execution_request: {command: 'true'}\n"
    )
    uet = cli(client, settings)
    bad = await uet("run", str(spec), "--repo", url.replace("project", "missing"), "--no-worker")
    assert bad.returncode == 2 and "cannot read it" in bad.stderr, bad.stderr
    wrong = await uet("run", str(spec), "--repo", url, "--no-worker")
    assert wrong.returncode == 2, wrong.stderr
    assert "base_ref 'nope' is not a branch or tag" in wrong.stderr
    for result in (bad, wrong):
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
