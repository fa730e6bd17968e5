"""A merge whose two sides changed different files and removed none, in the worker's process.

A wave's workstreams all start from its base, so integrating each one after the first is a
real merge: a ``git merge-tree`` process per workstream, most of it process start. When
neither side deleted anything there can be no rename on either side (a rename is a deletion
and an addition), so no directory rename either, and when the sides touched different paths
no file is merged as content: merge-ort's result is the head's tree with the other side's
files put in. libgit2 writes that tree here. Any other merge — a deletion, a type change, a
submodule, a path both touched, a file on one side where the other made a directory, more
than one merge base — is ``git merge-tree``'s, as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from activities.lib.git import Git

if TYPE_CHECKING:
    import pygit2

#: Blob modes a side may write: a file, an executable, a symbolic link.
_BLOBS = (0o100644, 0o100755, 0o120000)
_LINK = 0o120000

#: Path → (blob id, mode): what one side put at each path it added or changed.
Changes = dict[str, tuple["pygit2.Oid", int]]


def disjoint_merge(repo: Git, head: str, commit: str, base: str | None = None) -> str | None:
    """The tree ``git merge-tree --write-tree head commit`` writes, where ``commit``'s only
    parent is the merge base and the two sides changed different files and removed none;
    None for any other merge (and where libgit2 cannot open the repository or write into
    it), which is git's. ``base``: that parent, when the caller knows it is the only merge
    base (Lineage); else libgit2 walks the history to see."""
    import pygit2

    if not repo.writes_own_objects():
        return None
    try:
        lg = repo.libgit2()
        theirs = lg[commit].peel(pygit2.Commit)
        ours = lg[head].peel(pygit2.Commit)
        if len(theirs.parent_ids) != 1:
            return None
        parent = theirs.parents[0]
        if base is not None:
            if str(parent.id) != base:
                return None
        # One merge base, the commit's parent: it is an ancestor of the head, the commit is
        # not (merge-ort would merge from there, or find nothing to merge).
        elif lg.merge_base(ours.id, theirs.id) != parent.id:
            return None
        mine = _changes(parent.tree, ours.tree)
        other = _changes(parent.tree, theirs.tree)
        if mine is None or other is None or not _apart(mine, other):
            return None
        return str(_put(lg, ours.tree, other))
    except (pygit2.GitError, KeyError, ValueError, OSError):
        return None


class Lineage:
    """What an integration step knows of its head's history without walking it.

    It starts at the head the step found. Each commit it merges whose parents it knows (a
    wave's workstreams, made on that head, or on one another) joins it, and so does the merge.
    Every known commit but the first has all its parents known, so the head's history is the
    known commits and the first one's history; no known commit is in the first one's history
    (by induction: its parents are not, and none is the first's descendant and ancestor at
    once). So a new commit whose only parent is known has that parent as its one merge base
    with the head: the head holds the parent and cannot hold the commit. That spares a walk
    through every merge the step made so far, for each workstream of the wave."""

    def __init__(self, head: str) -> None:
        self._known = {head}
        self._head = head

    def base_of(self, commit: str, parents: list[str] | None) -> str | None:
        """``commit``'s one merge base with the head, where the lineage shows it."""
        if parents is None or len(parents) != 1 or commit in self._known:
            return None
        return parents[0] if self._head in self._known and parents[0] in self._known else None

    def merged(self, commit: str, parents: list[str] | None, merge: str) -> None:
        """The head is now ``merge``, of the head and ``commit`` (whose ``parents``, if known)."""
        if self._head in self._known and parents and all(p in self._known for p in parents):
            self._known |= {commit, merge}
        self._head = merge


def _changes(before: pygit2.Tree, after: pygit2.Tree) -> Changes | None:
    """Each path ``after`` added or changed against ``before``; None when it removed one,
    changed a file's kind (file and link, file and directory), touched a submodule or names
    a path that is not UTF-8."""
    from pygit2.enums import DeltaStatus

    found: Changes = {}
    for delta in before.diff_to_tree(after).deltas:
        new, old = delta.new_file, delta.old_file
        if delta.status not in (DeltaStatus.ADDED, DeltaStatus.MODIFIED) or new.mode not in _BLOBS:
            return None
        if delta.status == DeltaStatus.MODIFIED and (old.mode == _LINK) != (new.mode == _LINK):
            return None
        try:
            path = new.raw_path.decode("utf-8")
        except UnicodeDecodeError:
            return None
        found[path] = (new.id, new.mode)
    return found


def _apart(mine: Changes, other: Changes) -> bool:
    """No path on both sides, and no file on one side where the other has a directory."""

    def folders(paths: Changes) -> set[str]:
        return {path[:at] for path in paths for at, c in enumerate(path) if c == "/"}

    return not (
        mine.keys() & other.keys() or folders(mine) & other.keys() or folders(other) & mine.keys()
    )


def _put(lg: pygit2.Repository, tree: pygit2.Tree | None, changes: Changes) -> pygit2.Oid:
    """``tree`` with each change put in: only the trees on the changed paths are rewritten."""
    import pygit2
    from pygit2.enums import FileMode

    here: Changes = {}
    below: dict[str, Changes] = {}
    for path, entry in changes.items():
        name, slash, rest = path.partition("/")
        if slash:
            below.setdefault(name, {})[rest] = entry
        else:
            here[name] = entry
    builder = lg.TreeBuilder(tree) if tree is not None else lg.TreeBuilder()
    for name, (oid, mode) in here.items():
        builder.insert(name, oid, mode)
    for name, inner in below.items():
        sub = tree[name] if tree is not None and name in tree else None
        if sub is not None and not isinstance(sub, pygit2.Tree):
            raise ValueError(f"{name} is not a directory")  # _apart rules it out
        builder.insert(name, _put(lg, sub, inner), FileMode.TREE)
    return builder.write()
