"""Hostile tools: whatever a tool does to its own repository or to the user's git config, uet's
own git commands execute nothing of it and touch nothing outside."""

from __future__ import annotations

from pathlib import Path

from helpers import git_out, phase, run_input, run_phase, show, snapshot
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.run import WorkstreamState

PLANT = r"""
set -e
hook='#!/bin/sh
touch "$OUTSIDE/$(basename "$0")-ran"'
# In its own repository ...
git config core.fsmonitor "touch $OUTSIDE/fsmonitor-ran; false"
mkdir -p .git/hooks
for h in pre-commit post-commit post-checkout post-merge reference-transaction; do
  printf '%s\n' "$hook" > .git/hooks/$h; chmod +x .git/hooks/$h
done
# ... and in the user's repository, found through the alternates file.
shared="$(dirname "$(cat .git/objects/info/alternates)")"
git config -f "$shared/config" core.fsmonitor "touch $OUTSIDE/shared-fsmonitor-ran; false"
mkdir -p "$OUTSIDE/hooks"
for h in pre-commit post-commit post-checkout post-merge reference-transaction; do
  printf '%s\n' "$hook" > "$OUTSIDE/hooks/$h"; chmod +x "$OUTSIDE/hooks/$h"
done
git config -f "$shared/config" core.hooksPath "$OUTSIDE/hooks"
echo changed > app.txt
"""


async def test_planted_fsmonitor_and_hooks_never_run(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    repo: Path = make_repo({"app.txt": "original\n"})
    config_before = (repo / ".git" / "config").read_bytes()
    # One tool at a time: with several, the one whose run overlaps the change is failed.
    spec = phase(
        max_parallel=1,
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws-evil",
                "execution_request": {"command": PLANT, "env": {"OUTSIDE": str(outside)}},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "g", "command": "grep -q changed app.txt"}]
                },
            },
            {
                "workstream_id": "ws-next",
                "dependencies": ["ws-evil"],
                "execution_request": {"command": "echo next > next.txt"},
            },
            {"workstream_id": "ws-other", "execution_request": {"command": "echo other > o.txt"}},
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    evil = record.workstreams["ws-evil"]
    assert evil.status == WorkstreamState.FAILED
    assert "the repository's config changed while the tool ran" in (evil.reason or "")
    assert "uet put them back" in (evil.reason or "")
    assert record.workstreams["ws-next"].status == WorkstreamState.BLOCKED
    assert record.workstreams["ws-other"].status == WorkstreamState.COMPLETED
    # The user's config is as it was, and nothing planted ever ran.
    assert (repo / ".git" / "config").read_bytes() == config_before
    assert sorted(p.name for p in outside.iterdir()) == ["hooks"]


async def test_planted_filter_never_runs(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    repo: Path = make_repo({"app.txt": "x\n"})
    plant = (
        'shared="$(dirname "$(cat .git/objects/info/alternates)")"; '
        'git config -f "$shared/config" filter.evil.clean "touch $OUTSIDE/filter-ran; cat"; '
        "echo '* filter=evil' > .gitattributes; echo y > app.txt"
    )
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws",
                "execution_request": {"command": plant, "env": {"OUTSIDE": str(outside)}},
            }
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert "the repository's config changed" in (record.workstreams["ws"].reason or "")
    assert list(outside.iterdir()) == [], "uet's git add ran the planted filter"
    assert "evil" not in (repo / ".git" / "config").read_text()


async def test_rewritten_git_pointer_and_outside_symlink(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("do not read\n")
    other = make_repo({"other.txt": "other\n"}, name="other")
    other_before = snapshot(other), git_out(other, "for-each-ref")
    repo: Path = make_repo({"app.txt": "original\n"})
    before = snapshot(repo)
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws-pointer",
                "execution_request": {
                    "command": f'rm -rf .git && echo "gitdir: {other}/.git" > .git && echo new > app.txt'
                },
            },
            {
                "workstream_id": "ws-symlink",
                "execution_request": {"command": f"ln -s {outside}/secret.txt leak"},
            },
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    pointer = record.workstreams["ws-pointer"]
    assert pointer.status == WorkstreamState.COMPLETED, pointer.reason
    head = record.head_sha or ""
    assert show(repo, head, "app.txt") == "new"
    assert ".git" not in git_out(repo, "ls-tree", "--name-only", head).split()
    symlink = record.workstreams["ws-symlink"]
    assert symlink.status == WorkstreamState.FAILED
    assert "symlink_escape: leak" in (symlink.reason or "")
    assert (snapshot(other), git_out(other, "for-each-ref")) == other_before
    assert snapshot(repo) == before
    assert (outside / "secret.txt").read_text() == "do not read\n"


async def test_a_write_into_the_users_work_tree_fails_the_workstream(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    """Through the alternates path to the user's work tree: a stray file and an edit there
    fail the workstream with RepositoryTampered naming them; nothing of the tool's change
    is integrated."""
    repo: Path = make_repo({"app.txt": "original\n", "b.txt": "b\n"})
    walk_up = (
        'user="$(dirname "$(dirname "$(cat .git/objects/info/alternates)")")"; '
        'echo pwned > "$user/PWNED.txt"; echo edited >> "$user/b.txt"; echo mine > app.txt'
    )
    spec = phase(
        defaults={"review": "never"},
        workstreams=[{"workstream_id": "ws-evil", "execution_request": {"command": walk_up}}],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    evil = record.workstreams["ws-evil"]
    assert evil.status == WorkstreamState.FAILED
    reason = evil.reason or ""
    assert "PWNED.txt, b.txt in your work tree" in reason and "changed while the tool ran" in reason
    assert record.head_sha == record.base_sha  # nothing integrated
