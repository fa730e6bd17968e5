"""The worker's state dir (``UET_HOME``) and where each kind of file lives in it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from activities.lib.artifacts import ArtifactStore
from activities.lib.git import Git


class StateDir:
    """The layout of a worker's state dir (UET_HOME): artifacts, scratch space, run reports."""

    def __init__(self, home: Path) -> None:
        from activities.lib.telemetry.recorder import Recorder

        self.home = home
        self.artifacts = ArtifactStore(home / "artifacts")
        #: What happens, into the telemetry database (learning from runs).
        self.telemetry = Recorder(home)

    def run_dir(self, run_id: str) -> Path:
        """Scratch space (checkouts, temp indexes): removed when the run closes."""
        return self.home / "worktrees" / run_id

    def report_dir(self, run_id: str) -> Path:
        """What a run leaves for people: ledger, events, record, quarantined patches."""
        return self.home / "runs" / run_id

    def quarantine_dir(self, run_id: str) -> Path:
        return self.report_dir(run_id) / "quarantine"

    def scratch(self, run_id: str, *parts: str) -> Path:
        """A fresh, empty directory for one activity attempt (left-overs of a crashed attempt
        are removed first, so a retry starts from nothing)."""
        path = self.run_dir(run_id).joinpath(*parts)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    @asynccontextmanager
    async def private_index(self, repo: Git, run_id: str) -> AsyncIterator[Git]:
        """``repo`` with a throwaway index file of our own (never the user's)."""
        tmp_root = self.run_dir(run_id) / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            yield repo.with_(index_file=Path(tmp) / "index")
