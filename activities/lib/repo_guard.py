"""The user's repository is sacred, even against the tools uet runs.

A tool can find the user's git dir (its checkout borrows the user's objects through
``objects/info/alternates``) and plant config — a ``filter.*.clean`` command, ``core.fsmonitor``,
hooks — that git would then execute for uet *and* for the user. What git executes or obeys
there is snapshotted before every tool run; any change is undone afterwards and fails the
workstream, before uet runs a single git command over the tool's work.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

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
