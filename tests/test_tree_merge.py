"""The in-process merge of a wave's workstreams (activities/lib/tree_merge.py) writes the very
tree ``git merge-tree --write-tree`` writes, and leaves to git every merge it could get wrong:
a deletion (a rename, a directory rename), a path both sides touched, a file against a
directory, a kind of file changed, a submodule, a merge base that is not the commit's parent,
a shared repository. Histories are built with libgit2 and each merge is checked against git's
own."""

from __future__ import annotations

import random
import subprocess
import threading
from pathlib import Path
from typing import Any

import pygit2
import pytest
from helpers import git_out
from pygit2.enums import FileMode

from activities.lib.git import Git, open_repository
from activities.lib.state_dir import StateDir
from activities.lib.tree_merge import Lineage, disjoint_merge
from activities.workspace import WorkspaceActivities
from schemas.workspace import IntegrateInput, MergeRequest

SIG = pygit2.Signature("t", "t@t", 1_700_000_000, 0)

#: path → content (bytes), or (content, mode) for an executable or a link.
Files = dict[str, "bytes | tuple[bytes, FileMode]"]


def commit(lg: pygit2.Repository, files: Files, parents: list[pygit2.Oid]) -> pygit2.Oid:
    index = pygit2.Index()
    for path, value in files.items():
        data, mode = value if isinstance(value, tuple) else (value, FileMode.BLOB)
        index.add(pygit2.IndexEntry(path, lg.create_blob(data), mode))
    return lg.create_commit(None, SIG, SIG, "c", index.write_tree(lg), parents)


def by_git(repo: Path, head: str, other: str) -> str | None:
    """merge-tree's tree, or None where it finds a conflict."""
    done = subprocess.run(
        ["git", "merge-tree", "--write-tree", head, other], cwd=repo, capture_output=True
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout.decode().split("\n")[0] if done.returncode == 0 else None


@pytest.fixture
def lg(tmp_path: Path) -> pygit2.Repository:
    return pygit2.init_repository(str(tmp_path / "repo"), bare=True)


def three(lg: pygit2.Repository, base: Files, ours: Files, theirs: Files) -> tuple[str, str]:
    """(head, commit): two sides made from one base, as a wave's workstreams are."""
    root = commit(lg, base, [])
    return str(commit(lg, ours, [root])), str(commit(lg, theirs, [root]))


async def merged(lg: pygit2.Repository, head: str, other: str) -> str | None:
    return disjoint_merge(await open_repository(lg.path), head, other)


BASE: Files = {"a.txt": b"a\n", "src/m.py": b"m\n", "src/deep/n.py": b"n\n", "z": b"z\n"}

CLEAN = {
    "added at the root and deep": (
        {**BASE, "new.txt": b"new\n"},
        {**BASE, "src/deep/more/o.py": b"o\n"},
    ),
    "files of one new folder, one from each side": (
        {**BASE, "docs/a.md": b"a\n"},
        {**BASE, "docs/b.md": b"b\n"},
    ),
    "changed, made executable, a link added": (
        {**BASE, "src/m.py": b"m2\n"},
        {**BASE, "a.txt": (b"a\n", FileMode.BLOB_EXECUTABLE), "ln": (b"a.txt", FileMode.LINK)},
    ),
    "names that sort around a folder's": (
        {**BASE, "src.b": b"1\n", "src-a": b"2\n"},
        {**BASE, "src/a": b"3\n", "src0": b"4\n"},
    ),
    "not ASCII": ({**BASE, "ünï/cödé.txt": b"1\n"}, {**BASE, "中文.txt": b"2\n"}),
    "nothing on their side": ({**BASE, "a.txt": b"a2\n"}, dict(BASE)),
    "nothing on ours": (dict(BASE), {**BASE, "z": b"z2\n"}),
}


@pytest.mark.parametrize("case", sorted(CLEAN))
async def test_a_disjoint_merge_is_the_tree_merge_tree_writes(
    lg: pygit2.Repository, case: str
) -> None:
    head, other = three(lg, BASE, *CLEAN[case])
    mine = await merged(lg, head, other)
    assert mine is not None  # in-process
    assert mine == by_git(Path(lg.path), head, other)
    assert git_out(Path(lg.path), "fsck", "--strict", "--no-dangling") == ""


LEFT_TO_GIT = {
    "a deletion on their side (a rename would be one)": (
        {**BASE, "b.txt": b"b\n"},
        {k: v for k, v in BASE.items() if k != "z"},
    ),
    "a deletion on ours (a directory rename would be one)": (
        {k: v for k, v in BASE.items() if k != "src/deep/n.py"} | {"src/n.py": b"n\n"},
        {**BASE, "src/deep/p.py": b"p\n"},
    ),
    "the same path on both sides, even alike": (
        {**BASE, "a.txt": b"same\n"},
        {**BASE, "a.txt": b"same\n"},
    ),
    "a file on one side, a folder of that name on the other": (
        {**BASE, "x": b"file\n"},
        {**BASE, "x/y": b"in a folder\n"},
    ),
    "a file made a link": ({**BASE, "b": b"b\n"}, {**BASE, "z": (b"a.txt", FileMode.LINK)}),
}


@pytest.mark.parametrize("case", sorted(LEFT_TO_GIT))
async def test_any_other_merge_is_left_to_git(lg: pygit2.Repository, case: str) -> None:
    head, other = three(lg, BASE, *LEFT_TO_GIT[case])
    assert await merged(lg, head, other) is None


async def test_a_submodule_is_left_to_git(lg: pygit2.Repository) -> None:
    root = commit(lg, BASE, [])
    head = commit(lg, {**BASE, "b": b"b\n"}, [root])
    index = pygit2.Index()
    index.read_tree(lg[root].peel(pygit2.Tree))
    index.add(pygit2.IndexEntry("vendor/lib", root, FileMode.COMMIT))
    other = lg.create_commit(None, SIG, SIG, "sub", index.write_tree(lg), [root])
    assert await merged(lg, str(head), str(other)) is None


async def test_a_base_that_is_not_the_commits_parent_is_left_to_git(
    lg: pygit2.Repository,
) -> None:
    """Its parent off the head's history; two parents; a commit the head already holds."""
    root = commit(lg, BASE, [])
    head = commit(lg, {**BASE, "b": b"b\n"}, [root])
    aside = commit(lg, {**BASE, "c": b"c\n"}, [root])
    off = commit(lg, {**BASE, "c": b"c\n", "d": b"d\n"}, [aside])
    assert await merged(lg, str(head), str(off)) is None
    two = commit(lg, {**BASE, "e": b"e\n"}, [root, aside])
    assert await merged(lg, str(head), str(two)) is None
    # Merged into the head already, its change then undone there: merge-tree merges from
    # the commit itself (nothing to bring in), not from its parent.
    taken = commit(lg, {**BASE, "f": b"f\n"}, [head])
    undone = commit(lg, {**BASE, "b": b"b\n"}, [taken])
    assert await merged(lg, str(undone), str(taken)) is None


async def test_a_shared_repository_is_left_to_git(lg: pygit2.Repository) -> None:
    head, other = three(lg, BASE, *CLEAN["added at the root and deep"])
    git_out(Path(lg.path), "config", "core.sharedRepository", "group")
    assert await merged(lg, head, other) is None


async def test_random_histories_merge_as_git_merges_them(lg: pygit2.Repository) -> None:
    """Two sides of random adds, changes, deletions, kinds and folders: wherever the merge is
    in-process its tree is merge-tree's, and a fair share of them are."""
    rng = random.Random(20)
    names = ["a", "b", "d/a", "d/b", "d/e/f", "e", "e/f", "x.y", "x/y"]
    inside = 0
    for _ in range(60):
        base: Files = {}
        for name in rng.sample(names, 4):
            if not any(
                n != name and (n.startswith(name + "/") or name.startswith(n + "/")) for n in base
            ):
                base[name] = b"%d\n" % rng.randrange(3)

        def side(base: Files) -> Files:
            files = dict(base)
            for _ in range(rng.randrange(1, 3)):
                name = rng.choice(names)
                if rng.random() < 0.2 and name in files:
                    del files[name]
                    continue
                if any(
                    n != name and (n.startswith(name + "/") or name.startswith(n + "/"))
                    for n in files
                ):
                    continue
                kind = rng.choice(
                    [FileMode.BLOB, FileMode.BLOB, FileMode.BLOB_EXECUTABLE, FileMode.LINK]
                )
                files[name] = (b"%d\n" % rng.randrange(4), kind)
            return files

        head, other = three(lg, base, side(base), side(base))
        mine = await merged(lg, head, other)
        if mine is not None:
            inside += 1
            assert mine == by_git(Path(lg.path), head, other), (base, head, other)
    assert inside >= 15


async def test_a_waves_integration_takes_no_merge_tree_and_makes_gits_commits(
    make_repo: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four workstreams of one wave, each its own file: the integration's head is the one
    merge-tree's trees make, and no merge-tree ran."""
    repo: Path = make_repo({"a.txt": "a\n"})  # type: ignore[operator]
    base = git_out(repo, "rev-parse", "HEAD")
    lg = pygit2.Repository(str(repo))
    start = {"a.txt": b"a\n"}
    works = [
        str(commit(lg, {**start, f"ws{i}.txt": b"%d\n" % i}, [pygit2.Oid(hex=base)]))
        for i in range(4)
    ]
    branch = "refs/heads/uet/R1/integration"

    def step() -> IntegrateInput:
        git_out(repo, "update-ref", branch, base)
        return IntegrateInput(
            repo_path=str(repo),
            run_id="R1",
            wave=1,
            integration_ref=branch,
            expected_head=base,
            merges=[
                MergeRequest(workstream_id=f"ws{i}", commit_sha=w) for i, w in enumerate(works)
            ],
            timestamp=1_700_000_000,
        )

    activities = WorkspaceActivities(StateDir(tmp_path / "home"))
    spawned: list[str] = []
    merge_tree = WorkspaceActivities._merge_tree

    async def counted(repo_: Git, head: str, commit_sha: str) -> str | list[str]:
        spawned.append(commit_sha)
        return await merge_tree(repo_, head, commit_sha)

    monkeypatch.setattr(WorkspaceActivities, "_merge_tree", staticmethod(counted))
    walks: list[object] = []
    monkeypatch.setattr(pygit2.Repository, "merge_base", lambda *a: walks.append(a))
    threads: list[threading.Thread] = []

    def off_the_loop(*args: Any) -> str | None:
        threads.append(threading.current_thread())
        return disjoint_merge(*args)

    monkeypatch.setattr("activities.workspace.disjoint_merge", off_the_loop)
    inside = await activities.integrate(step())
    assert spawned == [] and walks == []  # the lineage knows each merge base
    # Each merge in a thread: a wave's trees must not stall the worker's event loop.
    assert len(threads) == 3 and threading.main_thread() not in threads
    monkeypatch.setattr("activities.workspace.disjoint_merge", lambda *_: None)
    by_merge_tree = await activities.integrate(step())
    assert spawned == works[1:]  # the first is made on the head: its own tree
    assert inside.head_sha == by_merge_tree.head_sha
    assert all(o.merged for o in inside.outcomes)
    listed = git_out(repo, "ls-tree", "--name-only", inside.head_sha).split()
    assert listed == ["a.txt", "ws0.txt", "ws1.txt", "ws2.txt", "ws3.txt"]


def test_the_lineage_knows_a_merge_base_only_where_its_history_shows_it() -> None:
    """Made on the head or on what was merged since: known. A commit merged already, a root,
    a parent from elsewhere, or any merge after one of those: walked (None)."""
    lineage = Lineage("H")
    assert lineage.base_of("c1", ["H"]) == "H"
    lineage.merged("c1", ["H"], "M1")
    assert lineage.base_of("c2", ["H"]) == "H" and lineage.base_of("c3", ["c1"]) == "c1"
    assert lineage.base_of("c1", ["H"]) is None  # merged already: it is its own base
    assert lineage.base_of("c4", ["H", "c1"]) is None and lineage.base_of("c5", None) is None
    lineage.merged("root", [], "M2")  # a commit with no parent: its history is unknown
    assert lineage.base_of("c6", ["H"]) is None
    other = Lineage("H")
    other.merged("far", ["X"], "M1")  # made on a commit the lineage does not know
    assert other.base_of("c7", ["H"]) is None
