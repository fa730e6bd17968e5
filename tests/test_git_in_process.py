"""What uet does to a repository without a git process: its commits (Git.commit_tree), the
very bytes ``git commit-tree`` writes, so the same ids, objects git reads and checks as its
own; its ref moves (Git.move_refs, libgit2), compare-and-swap under the ref's lock, all of a
transaction or none, with reflog entries where git writes them. And git itself where uet
should not: a shared repository, a tree that is not loose, a repository libgit2 cannot open."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out

from activities.lib.git import Git, GitError, ident_env, open_repository

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

    def with_(self, **changes: object) -> Counting:
        """Another context on the same repository, counted in the same list."""
        other = Counting(**{**{k: v for k, v in self.__dict__.items() if k != "runs"}, **changes})
        other.runs = self.runs
        return other


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


async def test_refs_move_in_one_transaction_from_where_uet_expects(make_repo: Any) -> None:
    repo, git, base, tree = await commits(make_repo)
    head = await git.commit_tree(tree, [base], "step\n", 1_700_000_000)
    branch, tag = "refs/heads/uet/R1/integration", "refs/tags/uet/R1/wave-1"
    await git.update_ref(branch, base, "")  # created: it was not there
    with pytest.raises(GitError):
        await git.update_ref(branch, base, "")  # there now: refused
    assert git.move_refs([(branch, head, base), (tag, head, None)]) is True
    assert git_out(repo, "rev-parse", branch, tag).split() == [head, head]
    # From where it no longer is: nothing moves, the tag neither.
    assert git.move_refs([(branch, base, base), (tag, base, None)]) is False
    assert git_out(repo, "rev-parse", branch, tag).split() == [head, head]
    assert git.move_refs([(branch, None, head)]) is True  # only checked
    assert git.runs == []
    # A reflog entry where git writes one (a branch of a repository with a work tree).
    logged = git_out(repo, "reflog", "show", "--format=%H %gn <%ge>", branch).splitlines()
    assert logged == [f"{head} uet <uet@localhost>", f"{base} uet <uet@localhost>"]
    git_out(repo, "fsck", "--strict")


async def test_a_ref_locked_by_git_is_not_moved(make_repo: Any) -> None:
    repo, git, base, tree = await commits(make_repo)
    head = await git.commit_tree(tree, [base], "step\n", 1_700_000_000)
    branch = "refs/heads/uet/R1/integration"
    await git.update_ref(branch, base, "")
    lock = git.git_dir / f"{branch}.lock"
    lock.write_text("")  # a git process is moving it
    assert git.move_refs([(branch, head, base)]) is None  # git's turn: it says why
    with pytest.raises(GitError, match="lock"):
        await git.update_ref(branch, head, base)
    lock.unlink()
    assert git_out(repo, "rev-parse", branch) == base


async def test_refs_libgit2_cannot_open_are_moved_by_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo256"
    repo.mkdir()
    git_out(repo, "init", "-q", "--object-format=sha256")
    commit = await counting(await open_repository(repo)).commit_tree(
        staged_tree(repo), [], "sha-256\n", 1_700_000_000
    )
    git = counting(await open_repository(repo))
    await git.update_ref("refs/heads/uet/x", commit, "")
    assert [args[0] for args in git.runs] == ["update-ref"]
    assert git_out(repo, "rev-parse", "refs/heads/uet/x") == commit


async def test_trees_are_read_and_written_as_git_does(make_repo: Any, tmp_path: Path) -> None:
    files = {"a.txt": "a\n", "d/e/f.txt": "f\n", "d/g.sh": "#!/bin/sh\n", "ü n/ï.txt": "i\n"}
    repo: Path = make_repo(files)
    (repo / "d" / "g.sh").chmod(0o755)
    (repo / "link").symlink_to("a.txt")
    git_out(repo, "add", "-A")
    git_out(repo, "commit", "-qm", "modes")
    commit = git_out(repo, "rev-parse", "HEAD")
    git_out(repo, "gc", "-q")  # packed: libgit2 reads packs as git does
    git = counting(await open_repository(repo))
    ours, theirs = git.with_(index_file=tmp_path / "ours"), git.with_(index_file=tmp_path / "git")
    await ours.read_tree(commit)
    assert git.runs == []  # libgit2 read it (a packed tree)
    await theirs.run("read-tree", commit)
    listed = [(await g.run("ls-files", "--stage")).stdout for g in (ours, theirs)]
    assert listed[0] == listed[1] and b"120000" in listed[0] and b"100755" in listed[0]
    # A change on top, by git apply as the patch tool makes it, then its tree.
    patch = tmp_path / "p.diff"
    patch.write_text("--- /dev/null\n+++ b/d/e/new.txt\n@@ -0,0 +1 @@\n+new\n")
    await ours.run("apply", "--cached", str(patch))
    git.runs.clear()
    tree = await ours.write_tree()
    assert git.runs == []  # libgit2 wrote it
    assert tree == await ours.out("write-tree")  # git finds the same tree there
    assert git_out(repo, "show", f"{tree}:d/e/new.txt") == "new"


async def test_an_index_libgit2_does_not_read_is_left_to_git(
    make_repo: Any, tmp_path: Path
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    git = counting(await open_repository(repo))
    split = git.with_(index_file=tmp_path / "split")
    await split.run("read-tree", "HEAD")
    await split.run("update-index", "--split-index")  # an extension libgit2 lacks
    git.runs.clear()
    assert await split.write_tree() == git_out(repo, "rev-parse", "HEAD^{tree}")
    assert [args[0] for args in git.runs] == ["write-tree"]
