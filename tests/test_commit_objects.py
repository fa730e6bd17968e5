"""uet writes its commits without a git process (Git.commit_tree): the very bytes
``git commit-tree`` writes, so the same ids, objects git reads and checks as its own — and git
itself writes them where uet should not (a shared repository, a tree that is not loose)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out

from activities.lib.git import Git, ident_env, open_repository

MESSAGES = [
    "plain",
    "subject\n\nbody line\nUet-Run: R1\n",
    "no newline at the end\n\nlast line",
    "  leading and trailing spaces  \n\n\n",
    "ünïcödé — 中文 ✓\n",
    "",
    "# a line git commit would strip\n\nkept\n",
]


def by_git(repo: Path, tree: str, parents: list[str], message: str, timestamp: int) -> str:
    """What git's own commit-tree makes of the same arguments, with uet's identity."""
    parent_args = [arg for p in parents for arg in ("-p", p)]
    done = subprocess.run(
        ["git", "commit-tree", tree, *parent_args, "-F", "-"],
        cwd=repo,
        input=message.encode(),
        capture_output=True,
        env={**os.environ, **ident_env(f"{timestamp} +0000")},
        check=True,
    )
    return done.stdout.decode().strip()


def staged_tree(repo: Path) -> str:
    """A tree with one new file beside the commit's, written as a loose object."""
    (repo / "b.txt").write_text("b\n")
    git_out(repo, "add", "b.txt")
    return git_out(repo, "write-tree")


class Counting(Git):
    """A Git that counts the processes it runs."""

    runs: list[tuple[str, ...]]

    async def run(self, *args: str, **kwargs: Any) -> Any:  # type: ignore[override]
        self.runs.append(args)
        return await super().run(*args, **kwargs)


def counting(repo: Git) -> Counting:
    git = Counting(git_dir=repo.git_dir)
    git.runs = []
    return git


async def commits(make_repo: Any) -> tuple[Path, Counting, str, str]:
    repo: Path = make_repo({"a.txt": "a\n"})
    base = git_out(repo, "rev-parse", "HEAD")
    return repo, counting(await open_repository(repo)), base, staged_tree(repo)


@pytest.mark.parametrize("message", MESSAGES, ids=range(len(MESSAGES)))
async def test_the_commit_written_is_the_one_git_writes(make_repo: Any, message: str) -> None:
    repo, git, base, tree = await commits(make_repo)
    for parents in ([], [base], [base, base]):  # git drops the second
        ours = await git.commit_tree(tree, parents, message, 1_700_000_123)
        assert ours == by_git(repo, tree, parents, message, 1_700_000_123)
    assert git.runs == []  # no git process: the shortcut was taken each time
    obj = git.git_dir / "objects" / ours[:2] / ours[2:]
    assert stat.S_IMODE(obj.stat().st_mode) == 0o444  # read-only, as git leaves its objects
    assert not list(obj.parent.glob("tmp_obj_*"))
    git_out(repo, "fsck", "--strict", "--no-dangling")  # git checks it as its own


async def test_writing_a_commit_again_is_the_same_commit(make_repo: Any) -> None:
    repo, git, base, tree = await commits(make_repo)
    first = await git.commit_tree(tree, [base], "again\n", 1_700_000_000)
    assert await git.commit_tree(tree, [base], "again\n", 1_700_000_000) == first
    assert git_out(repo, "cat-file", "-t", first) == "commit"


async def test_a_sha256_repository_gets_sha256_commits(tmp_path: Path) -> None:
    repo = tmp_path / "repo256"
    repo.mkdir()
    git_out(repo, "init", "-q", "--object-format=sha256")
    tree = staged_tree(repo)
    git = counting(await open_repository(repo))
    ours = await git.commit_tree(tree, [], "sha-256\n", 1_700_000_000)
    assert len(ours) == 64 and ours == by_git(repo, tree, [], "sha-256\n", 1_700_000_000)
    assert git.runs == []
    git_out(repo, "fsck", "--strict")


async def test_a_shared_repository_and_a_packed_tree_are_left_to_git(
    make_repo: Any, tmp_path: Path
) -> None:
    repo, git, base, tree = await commits(make_repo)
    git_out(repo, "gc", "-q", "--prune=now")  # the tree is packed now (it is in the index)
    git_out(
        repo, "update-ref", "refs/keep", await git.commit_tree(tree, [base], "x", 1_700_000_000)
    )
    assert [args[2] for args in git.runs] == ["commit-tree"]  # git wrote it: tree not loose
    for how in ("init", "config"):  # a shared repository: git gives its group permissions
        shared = tmp_path / how
        if how == "init":
            git_out(tmp_path, "init", "-q", "--shared=group", str(shared))
        else:
            shared.mkdir()
            git_out(shared, "init", "-q")
            git_out(shared, "config", "core.sharedRepository", "0640")
        tree = staged_tree(shared)
        git = counting(await open_repository(shared))
        ours = await git.commit_tree(tree, [], "shared\n", 1_700_000_000)
        assert [args[2] for args in git.runs] == ["commit-tree"], how
        assert ours == by_git(shared, tree, [], "shared\n", 1_700_000_000)
