"""The user's repository is sacred, even against the tools uet runs.

A tool can find the user's git dir (its checkout borrows the user's objects through
``objects/info/alternates``) and plant config — a ``filter.*.clean`` command, ``core.fsmonitor``,
hooks — that git would then execute for uet *and* for the user. What git executes or obeys
there is snapshotted before every tool run; any change is undone afterwards and fails the
workstream, before uet runs a single git command over the tool's work.

The same path leads to the user's work tree. The sandbox hides it (activities/lib/sandbox.py);
as a second line, and the only one with ``sandbox: {mode: none}``, the work tree and the index
are listed by their stat data before and after each tool run (``WorkTreeSnapshot``): anything
added, removed or written there fails the workstream, naming the paths. That cannot be undone
for the user — it may be their own edit — so it is reported, not reverted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.stat_listing import stat_listing

#: Files in a git dir whose contents git obeys (and may execute).
GUARDED_FILES = ("config", "info/attributes", "info/exclude", "commondir")


@dataclass(frozen=True)
class Snapshot:
    git_dir: Path
    files: dict[str, bytes | None]  # relative path → content (None: absent)

    @classmethod
    def take(cls, git_dir: Path) -> Snapshot:
        files: dict[str, bytes | None] = {}
        for rel in GUARDED_FILES:
            path = git_dir / rel
            files[rel] = path.read_bytes() if path.is_file() else None
        hooks = git_dir / "hooks"
        if hooks.is_dir():
            for path in sorted(hooks.iterdir()):
                if path.is_file():
                    files[f"hooks/{path.name}"] = path.read_bytes()
        return cls(git_dir, files)

    def restore(self) -> list[str]:
        """Put back what changed; the relative paths that had changed."""
        now = Snapshot.take(self.git_dir)
        changed = sorted(
            rel
            for rel in set(self.files) | set(now.files)
            if self.files.get(rel) != now.files.get(rel)
        )
        for rel in changed:
            path = self.git_dir / rel
            before = self.files.get(rel)
            if before is None:
                path.unlink(missing_ok=True)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(before)
                if rel.startswith("hooks/"):
                    path.chmod(0o755)
        return changed


def check_untouched(snapshot: Snapshot, workstream_id: str) -> None:
    changed = snapshot.restore()
    if changed:
        raise ApplicationError(
            f"{workstream_id}: the repository's {', '.join(changed)} changed while the tool ran "
            f"(in {snapshot.git_dir}; another tool running at the same time may have done it); "
            "uet put them back and refuses the change — a tool must not write into the "
            "user's .git",
            type="RepositoryTampered",
            non_retryable=True,
        )


@dataclass(frozen=True)
class WorkTreeSnapshot:
    """The user's work tree and index by their stat data (ctime and inode included, which no
    tool can set back): what changed between two is what was written there."""

    root: Path
    entries: dict[str, str]

    @classmethod
    def take(cls, root: Path, git_dir: Path) -> WorkTreeSnapshot:
        entries, _whole = stat_listing(root, skip_git_dir=True)  # what it can read, it watches
        entries.pop("", None)  # the root itself: its times change with every file added
        index = git_dir / "index"
        if index.exists():
            stat = index.stat()
            entries[".git/index"] = f"{stat.st_size} {stat.st_mtime_ns} {stat.st_ctime_ns}"
        return cls(root, entries)

    def changed_since(self, before: WorkTreeSnapshot) -> list[str]:
        return sorted(
            path
            for path in set(before.entries) | set(self.entries)
            if before.entries.get(path) != self.entries.get(path)
        )


def check_work_tree(before: WorkTreeSnapshot, git_dir: Path, workstream_id: str) -> None:
    """Fail the workstream when the user's work tree or index changed while its tool ran."""
    changed = WorkTreeSnapshot.take(before.root, git_dir).changed_since(before)
    if not changed:
        return
    shown = ", ".join(changed[:10]) + (
        f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    )
    raise ApplicationError(
        f"{workstream_id}: {shown} in your work tree ({before.root}) changed while the tool "
        "ran; uet refuses the change. If you edited them yourself, run again; otherwise see "
        "`git status` there and put back what you did not write (README: What a hostile tool "
        "or patch cannot do)",
        {"paths": changed},
        type="RepositoryTampered",
        non_retryable=True,
    )
