"""The worker's state dir (``UET_HOME``) and where each kind of file lives in it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore, UnusableArtifactStore, open_artifact_store
from activities.lib.git import SHA_ID, Git


class StateDir:
    """The layout of a worker's state dir (UET_HOME): artifacts, scratch space, run reports."""

    def __init__(self, home: Path) -> None:
        from activities.lib.telemetry.recorder import Recorder

        self.home = home
        #: Where blobs go: the store the environment names at the start (artifacts/factory.py).
        self.artifacts = _artifact_store(home)
        #: What happens, into the telemetry database (learning from runs).
        self.telemetry = Recorder(home)

    def run_dir(self, run_id: str) -> Path:
        """Scratch space (checkouts, temp indexes): removed when the run closes."""
        return self.home / "worktrees" / run_id

    def drop_run_dir(self, run_id: str) -> None:
        """The run's scratch space gone from where runs look for it at once, and removed
        from the disk by a thread: a run of many workstreams leaves thousands of entries (the
        sandboxes' mount points), and its report need not wait for them. The loop's default
        executor runs it, and ``asyncio.run`` waits for that executor as it ends, so a ``uet
        run`` leaves nothing; a worker killed meanwhile leaves a ``.tmp-`` folder, which
        ``uet gc`` collects (activities/lib/gc.py). The thread only waits for ``rm``: a
        ``shutil.rmtree`` of thousands of entries holds the interpreter lock for most of a
        second, while the worker's next run needs it."""
        path = self.run_dir(run_id)
        aside = path.with_name(f".tmp-closed-{path.name}-{uuid.uuid4().hex[:8]}")
        try:
            path.rename(aside)
        except FileNotFoundError:
            return  # a retry: gone already
        except OSError:
            shutil.rmtree(path, ignore_errors=True)
            return
        asyncio.get_running_loop().run_in_executor(None, _remove_tree, aside)

    def report_dir(self, run_id: str) -> Path:
        """What a run leaves for people: ledger, events, record, quarantined patches."""
        return self.home / "runs" / run_id

    def quarantine_dir(self, run_id: str) -> Path:
        return self.report_dir(run_id) / "quarantine"

    def scratch(self, run_id: str, *parts: str) -> Path:
        """A fresh, empty directory for one activity attempt (left-overs of a crashed attempt
        are removed first, so a retry starts from nothing)."""
        path = self.run_dir(run_id).joinpath(*parts)
        if path.exists():
            # Moved aside first: a cancelled attempt's process may still be writing into it,
            # and whatever it writes then goes with the old copy, not into the new one.
            aside = path.with_name(f".tmp-gone-{path.name}-{uuid.uuid4().hex[:8]}")
            try:
                path.rename(aside)
            except OSError:
                aside = path
            shutil.rmtree(aside, ignore_errors=True)
        path.mkdir(parents=True)
        write_owner(path)
        return path

    @asynccontextmanager
    async def private_index(
        self, repo: Git, run_id: str, at: str | None = None
    ) -> AsyncIterator[Git]:
        """``repo`` with a throwaway index file of our own (never the user's): empty, or
        holding commit ``at``'s tree (what ``git read-tree at`` makes)."""
        tmp_root = self.run_dir(run_id) / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=tmp_root) as tmp:
            index = Path(tmp) / "index"
            if at is not None:
                shutil.copyfile(await self._index_at(repo, run_id, at, Path(tmp)), index)
            yield repo.with_(index_file=index)

    async def _index_at(self, repo: Git, run_id: str, commit: str, tmp: Path) -> Path:
        """The run's index of ``commit``'s tree, read once: a wave's workstreams share their
        base, and each one's tool and commit both start from it — a git process each, saved
        by a file copy. An index holds no more than the tree's entries (without a work tree
        there is no stat data), so a copy is what ``read-tree`` would write; it is renamed
        into place whole, and a run's indexes go with its scratch space."""
        kept = self.run_dir(run_id) / "indexes" / commit
        if not SHA_ID.fullmatch(commit) or not kept.exists():
            built = tmp / "read-tree"
            await repo.with_(index_file=built).read_tree(commit)
            if not SHA_ID.fullmatch(commit):  # not a name to keep a file by
                return built
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(built, kept)
        return kept


def _remove_tree(path: Path) -> None:
    """``rm -rf``, in C and outside the interpreter; ``shutil.rmtree`` where there is none."""
    with contextlib.suppress(OSError):  # no rm here
        subprocess.run(["rm", "-rf", "--", str(path)], capture_output=True, check=False)
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)


def _artifact_store(home: Path) -> ArtifactStore:
    """The configured store. One that is not usable fails each activity that needs it (one
    line, not retried) instead of the worker's start, and is said once here."""
    try:
        return open_artifact_store(home)
    except ApplicationError as error:
        logging.getLogger("uet.worker").warning(error.message)
        return UnusableArtifactStore(error)


#: Who made a scratch dir (beside its ``tree/``, never in it: nothing of it reaches a patch or a
#: gate's tree), so ``uet gc`` and a starting worker can tell a dead worker's left-overs.
OWNER_FILE = ".uet-owner"


def write_owner(folder: Path) -> None:
    """Mark ``folder`` as this process's: host, pid, the pid's start time and boot id (so a
    reused pid or a reboot does not look alive), when."""
    (folder / OWNER_FILE).write_text(json.dumps(owner_mark()))


def read_owner(folder: Path) -> dict[str, Any] | None:
    try:
        mark = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return mark if isinstance(mark, dict) and isinstance(mark.get("pid"), int) else None


def owner_mark() -> dict[str, Any]:
    return {**_this_process(os.getpid()), "created_at": datetime.now(UTC).isoformat()}


@functools.cache
def _this_process(pid: int) -> dict[str, Any]:
    """What marks this process (asked once per pid: each scratch dir of every activity
    attempt is marked, and /proc need not be read again for the same answer)."""
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "pid_start": process_start(pid),
        "boot_id": boot_id(),
    }


def process_start(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks after boot (``/proc/<pid>/stat`` field 22); None
    where there is no /proc or the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count after its last ')'.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None
