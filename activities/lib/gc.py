"""What of ``UET_HOME`` (and of uet's refs in users' repositories) can go, and removing it.

``plan_gc`` only looks; ``apply`` removes, checking each item again just before (a cache used,
a scratch dir taken over by a live process or a ref moved since the plan is kept). What can go:

- ``scratch``: an activity attempt's scratch dir whose owner (``.uet-owner``) is a process of
  this host that is gone, or of another host and older than the limit;
- ``worktree``: everything left under ``worktrees/<run>`` of a closed run (no live owner in it);
- ``ref``: ``refs/heads/uet/<run>/…`` and ``refs/tags/uet/<run>/…`` of closed runs older than the
  limit (compare-and-delete; never a branch checked out in a work tree);
- ``artifact``: blobs older than the limit that no run report names (nor, transitively, an
  artifact they name) and no open run uses: files of ``artifacts/`` (the local store, or the
  PostgreSQL store's read-through cache) by their mtime, and, when the store is PostgreSQL,
  its rows by ``used_at`` (only when Temporal said which runs are open: its other workers'
  runs are not in this state dir);
- ``cache``: workspace caches last used (``meta.json``'s mtime) before the limit;
- ``tmp``: ``.tmp-*`` left-overs of interrupted writes, older than an hour.

Open runs come from the caller (Temporal, or "no closed report" offline); a run with a live
owner in its worktrees counts as open whatever the caller says.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore
from activities.lib.artifacts.postgres import PostgresArtifactStore
from activities.lib.git import clean_env
from activities.lib.pids import pid_exists
from activities.lib.stale_locks import break_stale_ref_locks
from activities.lib.state_dir import OWNER_FILE, boot_id, process_start, read_owner
from activities.lib.workspace.pool import is_free

#: A run whose report says one of these has ended.
CLOSED_STATES = {"completed", "failed", "rolled_back", "canceled"}
#: ``.tmp-*`` older than this is a left-over (writes take seconds, cache populates minutes).
TMP_MAX_AGE_S = 3600.0
#: Where scratch dirs sit below ``worktrees/<run>`` (``<label>/<step>``; fixers one deeper).
_SCRATCH_DEPTH = 4
#: Artifacts larger than this are not read for the references they hold (logs, diffs).
_SCAN_LIMIT = 16 << 20
SHA256 = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
SHA256_BYTES = re.compile(rb"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
KINDS = ("scratch", "worktree", "ref", "artifact", "cache", "tmp")


@dataclass(frozen=True)
class GcItem:
    kind: str
    #: The file or folder; for a ref, its repository.
    path: str
    size: int
    why: str
    ref: str | None = None
    #: A ref's value when planned (deleted only if it still has it).
    old: str | None = None
    #: An artifact in the database store (``path`` is then its URI).
    sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class GcPlan:
    home: Path
    older_than_s: float
    now: float
    items: list[GcItem] = field(default_factory=list)
    #: Bytes uet uses now, per part of the state dir.
    usage: dict[str, int] = field(default_factory=dict)
    #: What was kept although it might have gone, and why (one line each).
    notes: list[str] = field(default_factory=list)
    #: The database store the ``artifact`` items with a ``sha256`` are deleted from.
    store: PostgresArtifactStore | None = None

    @property
    def total(self) -> int:
        return sum(item.size for item in self.items)

    def by_kind(self) -> dict[str, dict[str, int]]:
        counts = {kind: {"items": 0, "bytes": 0} for kind in KINDS}
        for item in self.items:
            counts[item.kind]["items"] += 1
            counts[item.kind]["bytes"] += item.size
        return counts

    def as_json(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "older_than_days": self.older_than_s / 86400,
            "items": [item.as_json() for item in self.items],
            "total_bytes": self.total,
            "by_kind": self.by_kind(),
            "usage_bytes": self.usage,
            "notes": self.notes,
        }


@dataclass
class Applied:
    removed: list[GcItem] = field(default_factory=list)
    #: Items kept after all, with why.
    skipped: list[tuple[GcItem, str]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(item.size for item in self.removed)


# -- looking ------------------------------------------------------------------------------------


def plan_gc(
    home: Path,
    older_than: float,
    open_run_ids: Iterable[str],
    now: float,
    open_artifacts: Iterable[str] | None = None,
    store: ArtifactStore | None = None,
) -> GcPlan:
    """What can go from ``home``: ``older_than`` in seconds, ``now`` a Unix time.

    ``open_run_ids``: runs that may still use what they have (nothing of theirs goes but the
    scratch dirs of dead owners). ``open_artifacts``: the artifacts those runs use; None when
    that is unknown — then, if any run is open, no artifact goes (and none of a database
    store's). ``store``: the configured artifact store; a PostgreSQL one is collected too.
    """
    plan = GcPlan(home=home, older_than_s=older_than, now=now)
    limit = now - older_than
    open_ids = set(open_run_ids)
    reports = _reports(home)
    for run_dir in _subdirs(home / "worktrees"):
        run_id = run_dir.name
        if run_id.startswith("."):
            if run_id.startswith(".tmp-"):
                _maybe_tmp(plan, run_dir)
            continue
        scratch = list(scratch_dirs(run_dir))
        verdicts = [(path, _scratch_verdict(path, limit)) for path in scratch]
        busy = any(gone is None for _, gone in verdicts)
        if busy:
            open_ids.add(run_id)  # someone is at work in it
        closed = run_id not in open_ids and not busy
        if closed:
            plan.items.append(
                GcItem("worktree", str(run_dir), tree_size(run_dir), "its run is closed")
            )
            continue
        for path, gone in verdicts:
            if isinstance(gone, str):
                plan.items.append(GcItem("scratch", str(path), tree_size(path), gone))
    _plan_refs(plan, reports, open_ids, limit)
    _plan_artifacts(plan, reports, open_ids, open_artifacts, limit)
    _plan_caches(plan, limit)
    _plan_pool(plan, limit)
    plan.usage = {
        part: tree_size(home / part)
        for part in ("worktrees", "pool", "caches", "artifacts", "runs")
    }
    if isinstance(store, PostgresArtifactStore):
        plan.store = store
        _plan_stored_artifacts(plan, store, reports, open_artifacts, limit)
    return plan


def scratch_dirs(folder: Path, depth: int = _SCRATCH_DEPTH) -> Iterator[Path]:
    """The scratch dirs (folders with an owner mark) at most ``depth`` levels below
    ``folder``; never below one (checkouts are not walked)."""
    for sub in _subdirs(folder):
        if (sub / OWNER_FILE).is_file():
            yield sub
        elif depth > 1 and sub.name not in ("tree", ".git"):
            yield from scratch_dirs(sub, depth - 1)


def owner_alive(mark: dict[str, Any]) -> bool | None:
    """Whether the process that owns a scratch dir still runs: None when it is another
    host's (this one cannot tell)."""
    if mark.get("host") != socket.gethostname():
        return None
    if mark.get("boot_id") and boot_id() and mark["boot_id"] != boot_id():
        return False  # a reboot since: every process of then is gone
    pid = mark["pid"]
    if not pid_exists(pid) or _zombie(pid):
        return False
    started = mark.get("pid_start")
    now_started = process_start(pid)
    return not (started is not None and now_started is not None and started != now_started)


def dead_local_scratch(home: Path) -> list[GcItem]:
    """Scratch dirs whose owner was a process of this host that is gone (what a killed worker
    left): what a starting worker removes. Other hosts' and live owners' are never named."""
    found = []
    for run_dir in _subdirs(home / "worktrees"):
        if run_dir.name.startswith("."):
            continue
        for path in scratch_dirs(run_dir):
            mark = read_owner(path)
            if mark is not None and owner_alive(mark) is False:
                found.append(GcItem("scratch", str(path), tree_size(path), _dead_why(mark)))
    return found


def tree_size(path: Path) -> int:
    """Bytes of the files under ``path`` (not following symlinks); 0 when it is not there."""
    try:
        info = path.lstat()
    except OSError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _scratch_verdict(path: Path, limit: float) -> str | bool | None:
    """Why a scratch dir can go; None while its owner may be at work; False when it has no
    owner mark we can read (only a closed run's worktree takes it)."""
    mark = read_owner(path)
    if mark is None:
        return False
    alive = owner_alive(mark)
    if alive is False:
        return _dead_why(mark)
    if alive is None and _mtime(path / OWNER_FILE) < limit:
        return f"its owner on host {mark.get('host')} made it before the limit"
    return None


def _dead_why(mark: dict[str, Any]) -> str:
    return f"its owner, pid {mark['pid']} on this host, is gone"


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@dataclass(frozen=True)
class _Report:
    run_id: str
    folder: Path
    closed: bool
    repo_path: str | None
    changed: float


def _reports(home: Path) -> dict[str, _Report]:
    found = {}
    for folder in _subdirs(home / "runs"):
        record: dict[str, Any] = {}
        try:
            loaded = json.loads((folder / "run.json").read_text())
            record = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            pass
        changed = max(
            (_mtime(folder / name) for name in ("run.json", "ledger.jsonl", "events.jsonl")),
            default=0.0,
        )
        repo = record.get("repo_path")
        found[folder.name] = _Report(
            run_id=folder.name,
            folder=folder,
            closed=record.get("status") in CLOSED_STATES,
            repo_path=repo if isinstance(repo, str) and repo else None,
            changed=changed,
        )
    return found


def closed_run_ids(home: Path) -> set[str]:
    """Runs whose report says they ended."""
    return {run_id for run_id, report in _reports(home).items() if report.closed}


def local_run_ids(home: Path) -> set[str]:
    """Every run the state dir has something of."""
    folders = _subdirs(home / "worktrees") + _subdirs(home / "runs")
    return {p.name for p in folders if not p.name.startswith(".")}


def _plan_refs(plan: GcPlan, reports: dict[str, _Report], open_ids: set[str], limit: float) -> None:
    old = {
        run_id: report
        for run_id, report in reports.items()
        if report.closed and run_id not in open_ids and report.changed < limit
    }
    repos: dict[str, set[str]] = {}
    for report in old.values():
        if report.repo_path:
            repos.setdefault(report.repo_path, set()).add(report.run_id)
    for repo, run_ids in sorted(repos.items()):
        listed = _git(
            repo,
            "for-each-ref",
            "--format=%(objectname) %(refname)",
            "refs/heads/uet/",
            "refs/tags/uet/",
        )
        if listed is None:
            plan.notes.append(f"{repo}: not a git repository any more; its uet refs not checked")
            continue
        checked_out = _checked_out(repo)
        for line in listed.splitlines():
            sha, _, ref = line.partition(" ")
            parts = ref.split("/")
            if len(parts) < 4 or parts[3] not in run_ids:
                continue
            if ref in checked_out:
                plan.notes.append(f"{repo}: {ref} is checked out; kept")
                continue
            plan.items.append(
                GcItem("ref", repo, 0, f"run {parts[3]} closed before the limit", ref=ref, old=sha)
            )


def _checked_out(repo: str) -> set[str]:
    listed = _git(repo, "worktree", "list", "--porcelain") or ""
    found = {line.split(" ", 1)[1] for line in listed.splitlines() if line.startswith("branch ")}
    head = _git(repo, "symbolic-ref", "-q", "HEAD")
    if head:
        found.add(head.strip())
    return found


def _git_result(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", path, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=clean_env(),  # git's messages in English: "File exists" is read
    )


def _git(repo: str, *args: str) -> str | None:
    try:
        result = _git_result(repo, *args)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _plan_artifacts(
    plan: GcPlan,
    reports: dict[str, _Report],
    open_ids: set[str],
    open_artifacts: Iterable[str] | None,
    limit: float,
) -> None:
    root = plan.home / "artifacts" / "sha256"
    blobs: dict[str, Path] = {}
    for shard in _subdirs(root):
        try:
            entries = list(os.scandir(shard))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith(".tmp-"):
                _maybe_tmp(plan, Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                blobs[shard.name + entry.name] = Path(entry.path)
    if not blobs:
        return
    if open_artifacts is None and open_ids:
        plan.notes.append(
            f"artifacts kept: {len(open_ids)} open run(s) whose artifacts cannot be told "
            "(without --offline uet asks Temporal)"
        )
        return
    local = _LocalBlobs(blobs)
    used = _closure(set(open_artifacts or ()) | _report_names(reports, local), local)
    for sha, path in sorted(blobs.items()):
        if sha in used:
            continue
        try:
            info = path.lstat()
        except OSError:
            continue
        if info.st_mtime < limit:
            plan.items.append(
                GcItem("artifact", str(path), info.st_size, "no run report or open run uses it")
            )


def _plan_stored_artifacts(
    plan: GcPlan,
    store: PostgresArtifactStore,
    reports: dict[str, _Report],
    open_artifacts: Iterable[str] | None,
    limit: float,
) -> None:
    """The database's blobs: what ``_plan_artifacts`` does for files, by ``used_at``."""
    try:
        listed = store.listing()
    except ApplicationError as exc:  # unreachable: the rest of gc goes on
        plan.notes.append(f"artifacts in {store.location} not checked: {exc.message}")
        return
    plan.usage["database artifacts"] = sum(size for size, _ in listed.values())
    if not listed:
        return
    if open_artifacts is None:
        # Workers of other hosts may have runs open that no report here names.
        plan.notes.append(
            f"artifacts in {store.location} kept: only Temporal can tell which runs use them "
            "(without --offline uet asks it)"
        )
        return
    blobs = _StoredBlobs(store, {sha: size for sha, (size, _) in listed.items()})
    used = _closure(set(open_artifacts) | _report_names(reports, blobs), blobs)
    for sha, (size, used_at) in sorted(listed.items()):
        if sha not in used and used_at < limit:
            plan.items.append(
                GcItem(
                    "artifact",
                    store.ref(sha, size, "application/octet-stream").uri,
                    size,
                    "no run report or open run uses it",
                    sha256=sha,
                )
            )


class _Blobs(Protocol):
    """Artifacts by name, to follow the names they hold: files, or a database store's rows."""

    def __contains__(self, sha: object) -> bool: ...

    def size(self, sha: str) -> int | None:
        """None when it cannot be told (gone meanwhile)."""

    def read(self, sha: str) -> bytes:
        """Empty when it cannot be read."""


@dataclass
class _LocalBlobs:
    paths: dict[str, Path]

    def __contains__(self, sha: object) -> bool:
        return sha in self.paths

    def size(self, sha: str) -> int | None:
        try:
            return self.paths[sha].stat().st_size
        except OSError:
            return None

    def read(self, sha: str) -> bytes:
        return _read(self.paths[sha])


@dataclass
class _StoredBlobs:
    store: PostgresArtifactStore
    sizes: dict[str, int]

    def __contains__(self, sha: object) -> bool:
        return sha in self.sizes

    def size(self, sha: str) -> int | None:
        return self.sizes.get(sha)

    def read(self, sha: str) -> bytes:
        try:
            return self.store.read_bytes(self.store.ref(sha, self.sizes[sha], ""))
        except ApplicationError:  # gone, damaged or unreachable: it names nothing we can see
            return b""


def _report_names(reports: dict[str, _Report], blobs: _Blobs) -> set[str]:
    """The artifact names the run reports of this state dir hold."""
    wanted: set[str] = set()
    for report in reports.values():
        for path in sorted(report.folder.rglob("*")):
            if path.suffix in (".json", ".jsonl") and path.is_file():
                wanted |= _references(path.read_bytes(), blobs)
    return wanted


def _references(data: bytes, blobs: _Blobs) -> set[str]:
    """Artifact names in a document: every 64-hex token, and for JSON every list of refs read
    as one (a document split in parts may cut a name at a part's end)."""
    found = {m.decode() for m in SHA256_BYTES.findall(data)}
    for document in _json_documents(data):
        for parts in _ref_lists(document):
            if len(parts) > 1 and all(p in blobs for p in parts):
                joined = b"".join(blobs.read(p) for p in parts)
                found |= {m.decode() for m in SHA256_BYTES.findall(joined)}
    return found


def _json_documents(data: bytes) -> Iterator[Any]:
    text = data.decode("utf-8", "replace").strip()
    if not text or text[0] not in "[{":
        return
    try:
        yield json.loads(text)
        return
    except ValueError:
        pass
    for line in text.splitlines():
        try:
            yield json.loads(line)
        except ValueError:
            continue


def _ref_lists(value: Any) -> Iterator[list[str]]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _ref_lists(item)
    elif isinstance(value, list):
        names = [v.get("sha256") for v in value if isinstance(v, dict)]
        if names and len(names) == len(value) and all(isinstance(n, str) for n in names):
            yield [str(n) for n in names]
        for item in value:
            yield from _ref_lists(item)


def _closure(wanted: set[str], blobs: _Blobs) -> set[str]:
    """``wanted`` and what the artifacts in it name, and so on (a journal names patches)."""
    used: set[str] = set()
    todo = [sha for sha in wanted if sha in blobs]
    used.update(wanted)
    while todo:
        sha = todo.pop()
        size = blobs.size(sha)
        if size is None or size > _SCAN_LIMIT:
            continue
        for name in _references(blobs.read(sha), blobs):
            if name in blobs and name not in used:
                used.add(name)
                todo.append(name)
    return used


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _plan_caches(plan: GcPlan, limit: float) -> None:
    for folder in _subdirs(plan.home / "caches"):
        if folder.name.startswith(".tmp-"):
            _maybe_tmp(plan, folder)
            continue
        meta = folder / "meta.json"
        if meta.is_file() and _mtime(meta) < limit:
            plan.items.append(
                GcItem("cache", str(folder), tree_size(folder), "last used before the limit")
            )


def _plan_pool(plan: GcPlan, limit: float) -> None:
    """Pooled checkouts (activities/lib/workspace/pool.py) not used since the limit."""
    for repo in _subdirs(plan.home / "pool"):
        for slot in _subdirs(repo):
            if not slot.name.isdigit():
                continue  # git-dir: the empty .git the pool's resets copy
            if _mtime(slot / "slot.json") < limit and is_free(slot):
                plan.items.append(
                    GcItem("pool", str(slot), tree_size(slot), "a pooled checkout unused since")
                )


def _maybe_tmp(plan: GcPlan, path: Path) -> None:
    if _mtime(path) < plan.now - TMP_MAX_AGE_S:
        plan.items.append(
            GcItem("tmp", str(path), tree_size(path), "left over by an interrupted write")
        )


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.is_dir(follow_symlinks=False))
    except OSError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return float("inf")  # not there: never "old"


# -- removing -----------------------------------------------------------------------------------


def apply(plan: GcPlan) -> Applied:
    """Remove what ``plan`` names, each checked again first."""
    return remove(plan.items, plan.now - plan.older_than_s, plan.store)


def remove(
    items: Iterable[GcItem], limit: float, store: PostgresArtifactStore | None = None
) -> Applied:
    done = Applied()
    for item in items:
        if item.sha256 is not None:  # checked and deleted in one go, under the blob's lock
            reason = _remove_stored(item.sha256, store, limit)
        else:
            reason = _still_goes(item, limit)
            if reason is None:
                reason = _remove(item)
        if reason is None:
            done.removed.append(item)
        else:
            done.skipped.append((item, reason))
    return done


def _still_goes(item: GcItem, limit: float) -> str | None:
    """None if ``item`` can still go, else why it stays."""
    path = Path(item.path)
    if item.kind == "ref":
        return None  # the compare-and-delete checks it
    if not path.exists() and not path.is_symlink():
        return "already gone"
    if item.kind == "scratch":
        if not _scratch_verdict(path, limit):
            return "its owner is at work in it again"
    elif item.kind == "worktree":
        if any(_scratch_verdict(p, limit) is None for p in scratch_dirs(path)):
            return "a live process works in it"
    elif item.kind == "cache":
        if _mtime(path / "meta.json") >= limit:
            return "used since the plan"
    elif item.kind == "artifact" and _mtime(path) >= limit:
        return "stored again since the plan"
    elif item.kind == "pool" and (_mtime(path / "slot.json") >= limit or not is_free(path)):
        return "in use again"
    return None


def _remove_stored(sha256: str, store: PostgresArtifactStore | None, limit: float) -> str | None:
    if store is None:
        return "no database artifact store to remove it from"
    try:
        return store.delete_unused(sha256, limit)
    except ApplicationError as exc:  # unreachable now
        return exc.message


def _remove(item: GcItem) -> str | None:
    if item.kind == "ref":
        assert item.ref and item.old
        try:
            result = _git_result(item.path, "update-ref", "-d", item.ref, item.old)
            if result.returncode != 0 and "File exists" in result.stderr:
                # A lock a killed worker left on the ref (activities/lib/stale_locks.py).
                common = _git(item.path, "rev-parse", "--path-format=absolute", "--git-common-dir")
                if common and break_stale_ref_locks(Path(common.strip()), [item.ref]):
                    result = _git_result(item.path, "update-ref", "-d", item.ref, item.old)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"git update-ref failed ({exc})"
        if result.returncode != 0:
            return f"moved since the plan, or cannot be deleted ({result.stderr.strip()[:200]})"
        return None
    path = Path(item.path)
    try:
        if path.is_dir() and not path.is_symlink():
            # Renamed first: whoever makes the same folder again right now gets a fresh one.
            trash = path.with_name(f".tmp-gc-{path.name}-{uuid.uuid4().hex[:8]}")
            os.rename(path, trash)
            shutil.rmtree(trash, onerror=_writable_and_retry)
        else:
            path.unlink()
    except FileNotFoundError:
        return "already gone"
    except OSError as exc:
        return f"cannot remove it ({exc.strerror or exc})"
    return None


def _writable_and_retry(function: Any, path: str, _info: Any) -> None:
    """A read-only folder (a tool's doing) keeps rmtree out: make it writable, try again."""
    os.chmod(os.path.dirname(path), 0o700)
    function(path)


def human(size: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    amount = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{size} B"
