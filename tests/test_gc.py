"""`uet gc` and the worker's start cleanup: what a state dir full of left-overs loses and keeps."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from helpers import phase, run_input

from activities.lib import gc
from activities.lib.artifacts import LocalArtifactStore
from activities.lib.state_dir import OWNER_FILE, StateDir, owner_mark
from runtime.cli.gc import _open_runs
from runtime.plugin import clean_after_dead_workers
from schemas.refs import (
    branch_ref,
    integration_branch,
    tag_ref,
    wave_tag,
    workflow_id,
    workstream_branch,
)
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parent.parent
DAY = 86400.0
LIMIT = 14 * DAY
NOW = time.time()
OLD = NOW - 30 * DAY

OPEN = "01OPENRUN000000000000000000"
CLOSED = "01CLOSEDRUN0000000000000000"
RECENT = "01RECENTRUN0000000000000000"


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def age(path: Path, when: float) -> None:
    os.utime(path, (when, when), follow_symlinks=False)


def own(folder: Path, **fields: object) -> None:
    (folder / OWNER_FILE).write_text(json.dumps({**owner_mark(), **fields}))


@dataclass
class Home:
    home: Path
    repo: Path
    live: Path
    dead: Path
    foreign_new: Path
    foreign_old: Path
    artifacts: dict[str, str]  # name → sha256

    def blob(self, name: str) -> Path:
        return LocalArtifactStore(self.home / "artifacts").path_for(self.artifacts[name])

    def refs(self) -> set[str]:
        return set(git(self.repo, "for-each-ref", "--format=%(refname)", "refs/").splitlines())


def report(home: Path, run_id: str, status: str, repo: Path, when: float, **extra: object) -> None:
    folder = home / "runs" / run_id
    folder.mkdir(parents=True, exist_ok=True)
    record = {"run_id": run_id, "status": status, "repo_path": str(repo), **extra}
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "events.jsonl").write_text("")
    for name in ("run.json", "events.jsonl"):
        age(folder / name, when)


def build(tmp_path: Path, make_repo) -> Home:  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    state = StateDir(home)
    repo = make_repo({"a.txt": "a\n"})
    head = git(repo, "rev-parse", "HEAD")
    refs = [branch_ref(integration_branch(run)) for run in (OPEN, CLOSED, RECENT)] + [
        branch_ref(workstream_branch(CLOSED, "ws-x")),
        branch_ref(workstream_branch(CLOSED, "ws-y")),
        tag_ref(wave_tag(CLOSED, 1)),
        tag_ref(wave_tag(OPEN, 1)),
    ]
    for ref in refs:
        git(repo, "update-ref", ref, head)
    # A closed run's branch someone checked out stays.
    git(
        repo,
        "worktree",
        "add",
        "-q",
        str(tmp_path / "checked-out"),
        workstream_branch(CLOSED, "ws-y"),
    )

    # Scratch dirs of the open run: ours (live), a killed worker's, two of another host.
    live = state.scratch(OPEN, "ws-a", "tool-1")
    (live / "tree").mkdir()
    (live / "tree" / "f.txt").write_text("work in progress\n")
    dead = state.scratch(OPEN, "ws-b", "tool-1")
    (dead / "tree").mkdir()
    (dead / "tree" / "big.bin").write_bytes(b"x" * 4096)
    own(dead, pid=dead_pid())
    foreign_new = state.scratch(OPEN, "ws-c", "gates-abc")
    own(foreign_new, host="elsewhere.example", pid=1)
    foreign_old = state.scratch(OPEN, "ws-d", "gates-abc")
    own(foreign_old, host="elsewhere.example", pid=1)
    age(foreign_old / OWNER_FILE, OLD)
    # The closed run's checkouts a killed worker left (close_run did not get to them).
    leftover = state.scratch(CLOSED, "ws-x", "tool-2")
    own(leftover, pid=dead_pid())
    (state.run_dir(CLOSED) / "tmp").mkdir()

    store = LocalArtifactStore(home / "artifacts")
    names: dict[str, str] = {}

    def put(name: str, data: bytes, when: float) -> str:
        ref = store.put_bytes(data)
        age(store.path_for(ref.sha256), when)
        names[name] = ref.sha256
        return ref.sha256

    patch = put("patch", b"diff --git a/a.txt b/a.txt\n", OLD)  # named only inside the journal
    journal = put("journal", json.dumps({"entry": {"patch": {"sha256": patch}}}).encode(), OLD)
    put("ledger_log", b"a log named by the ledger\n", OLD)
    put("open_input", b"what the open run uses\n", OLD)
    put("unused_old", b"nobody uses this\n", OLD)
    put("unused_new", b"stored a minute ago\n", NOW - 60)
    put("recent_log", b"the recent run's log\n", OLD)
    stale = store.path_for(names["unused_old"]).parent / ".tmp-crashed"
    stale.write_bytes(b"half")
    age(stale, NOW - 2 * 3600)

    report(home, CLOSED, "completed", repo, OLD, journal=[{"sha256": journal, "size": 1}])
    (home / "runs" / CLOSED / "ledger.jsonl").write_text(
        json.dumps({"log": {"sha256": names["ledger_log"], "uri": "file:///x"}}) + "\n"
    )
    age(home / "runs" / CLOSED / "ledger.jsonl", OLD)
    report(home, RECENT, "failed", repo, NOW - DAY, log={"sha256": names["recent_log"]})
    report(home, OPEN, "running", repo, OLD)

    caches = home / "caches"
    for key, when in (("old", OLD), ("fresh", NOW - DAY)):
        (caches / key / "paths").mkdir(parents=True)
        (caches / key / "paths" / "lib.py").write_text("x = 1\n")
        (caches / key / "meta.json").write_text("{}")
        age(caches / key / "meta.json", when)
    (caches / ".tmp-old-1234").mkdir()
    age(caches / ".tmp-old-1234", NOW - 2 * 3600)
    (caches / ".tmp-busy-5678").mkdir()  # being populated right now
    return Home(home, repo, live, dead, foreign_new, foreign_old, names)


def planned(plan: gc.GcPlan, home: Path) -> set[tuple[str, str]]:
    return {(item.kind, item.ref or str(Path(item.path).relative_to(home))) for item in plan.items}


def expected_common(h: Home) -> set[tuple[str, str]]:
    sharded = [p.relative_to(h.home) for p in (h.blob("unused_old"),)]
    return {
        ("scratch", f"worktrees/{OPEN}/ws-b/tool-1"),
        ("scratch", f"worktrees/{OPEN}/ws-d/gates-abc"),
        ("worktree", f"worktrees/{CLOSED}"),
        ("ref", branch_ref(integration_branch(CLOSED))),
        ("ref", branch_ref(workstream_branch(CLOSED, "ws-x"))),
        ("ref", tag_ref(wave_tag(CLOSED, 1))),
        ("cache", "caches/old"),
        ("tmp", "caches/.tmp-old-1234"),
        ("tmp", str(sharded[0].parent / ".tmp-crashed")),
    }


def test_the_plan_names_exactly_the_left_overs_and_apply_removes_them(tmp_path: Path, make_repo):  # type: ignore[no-untyped-def]
    h = build(tmp_path, make_repo)
    plan = gc.plan_gc(h.home, LIMIT, {OPEN}, NOW, open_artifacts={h.artifacts["open_input"]})
    assert planned(plan, h.home) == expected_common(h) | {
        ("artifact", str(h.blob("unused_old").relative_to(h.home)))
    }
    assert any("ws-y" in note and "checked out" in note for note in plan.notes)
    sizes = {item.path: item.size for item in plan.items}
    assert sizes[str(h.dead)] >= 4096
    assert plan.total == sum(item.size for item in plan.items)
    assert set(plan.usage) == {"worktrees", "pool", "caches", "artifacts", "runs"}
    assert plan.usage["worktrees"] >= 4096

    done = gc.apply(plan)
    assert not done.skipped
    assert done.freed == plan.total
    assert not h.dead.exists() and not h.foreign_old.exists()
    assert (h.live / "tree" / "f.txt").is_file() and h.foreign_new.is_dir()
    assert not (h.home / "worktrees" / CLOSED).exists()
    assert h.refs() == {
        branch_ref(integration_branch(OPEN)),
        tag_ref(wave_tag(OPEN, 1)),
        branch_ref(integration_branch(RECENT)),
        branch_ref(workstream_branch(CLOSED, "ws-y")),
        "refs/heads/main",
    }
    assert not h.blob("unused_old").exists()
    for kept in ("patch", "journal", "ledger_log", "open_input", "unused_new", "recent_log"):
        assert h.blob(kept).is_file(), kept
    assert not (h.home / "caches" / "old").exists()
    assert (h.home / "caches" / "fresh" / "meta.json").is_file()
    assert (h.home / "caches" / ".tmp-busy-5678").is_dir()
    # Nothing left to do; the runs' reports are never touched.
    again = gc.plan_gc(h.home, LIMIT, {OPEN}, NOW, open_artifacts={h.artifacts["open_input"]})
    assert again.items == []
    assert {p.name for p in (h.home / "runs").iterdir()} == {OPEN, CLOSED, RECENT}


def test_apply_checks_again_before_removing(tmp_path: Path, make_repo):  # type: ignore[no-untyped-def]
    h = build(tmp_path, make_repo)
    plan = gc.plan_gc(h.home, LIMIT, {OPEN}, NOW, open_artifacts=set())
    # Since the plan: the cache was used, a live process took the dead owner's dir over, a
    # ref moved.
    os.utime(h.home / "caches" / "old" / "meta.json")
    own(h.dead)
    ref = branch_ref(integration_branch(CLOSED))
    git(h.repo, "commit", "-q", "--allow-empty", "-m", "more")
    git(h.repo, "update-ref", ref, "HEAD")
    done = gc.apply(plan)
    skipped = {item.ref or item.path: reason for item, reason in done.skipped}
    assert set(skipped) == {str(h.home / "caches" / "old"), str(h.dead), ref}
    assert h.dead.is_dir() and (h.home / "caches" / "old").is_dir() and ref in h.refs()


def test_without_the_open_runs_artifacts_no_artifact_goes(tmp_path: Path, make_repo):  # type: ignore[no-untyped-def]
    h = build(tmp_path, make_repo)
    plan = gc.plan_gc(h.home, LIMIT, {OPEN}, NOW, open_artifacts=None)
    assert not [item for item in plan.items if item.kind == "artifact"]
    assert any(note.startswith("artifacts kept: 1 open run") for note in plan.notes)


def test_the_owner_mark_sits_beside_the_tree_and_tells_the_living(tmp_path: Path):
    state = StateDir(tmp_path / "home")
    scratch = state.scratch("RUN", "ws", "tool-1")
    mark = json.loads((scratch / OWNER_FILE).read_text())
    assert mark["pid"] == os.getpid() and mark["host"] and mark["created_at"]
    assert gc.owner_alive(mark) is True
    assert gc.owner_alive({**mark, "pid": dead_pid()}) is False
    if mark["pid_start"] is not None:  # a reused pid is not the owner
        assert gc.owner_alive({**mark, "pid_start": mark["pid_start"] + 1}) is False
    assert gc.owner_alive({**mark, "host": "elsewhere.example"}) is None
    # A retry starts from nothing but a fresh mark; the tree never holds one.
    (scratch / "tree").mkdir()
    again = state.scratch("RUN", "ws", "tool-1")
    assert sorted(p.name for p in again.iterdir()) == [OWNER_FILE]


def test_a_starting_worker_removes_what_a_killed_worker_left(tmp_path: Path, make_repo):  # type: ignore[no-untyped-def]
    h = build(tmp_path, make_repo)
    freed = clean_after_dead_workers(h.home)
    assert freed >= 4096
    assert not h.dead.exists()
    assert not (h.home / "worktrees" / CLOSED / "ws-x" / "tool-2").exists()
    assert (h.live / "tree" / "f.txt").is_file()
    # Another host's are not this worker's to judge, however old; nor anything else.
    assert h.foreign_new.is_dir() and h.foreign_old.is_dir()
    assert (h.home / "worktrees" / CLOSED / "tmp").is_dir()
    assert (h.home / "caches" / "old").is_dir() and h.blob("unused_old").is_file()
    assert clean_after_dead_workers(h.home) == 0
    # A state dir that is not there yet is no problem.
    assert clean_after_dead_workers(tmp_path / "nothing") == 0


def uet(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "UET_HOME": str(home), "TEMPORAL_ADDRESS": "127.0.0.1:1"}
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_uet_gc_offline_lists_then_removes_exactly_the_left_overs(tmp_path: Path, make_repo):  # type: ignore[no-untyped-def]
    h = build(tmp_path, make_repo)
    listed = uet("gc", "--offline", "--dry-run", "--json", home=h.home)
    assert listed.returncode == 0, listed.stderr
    document = json.loads(listed.stdout)
    plan = gc.GcPlan(h.home, LIMIT, NOW, [gc.GcItem(**item) for item in document["items"]])
    # Offline the open run (no closed report) may use any artifact: none goes.
    assert planned(plan, h.home) == expected_common(h)
    assert document["total_bytes"] == sum(i["size"] for i in document["items"]) > 0
    assert document["by_kind"]["artifact"] == {"items": 0, "bytes": 0}
    assert document["usage_bytes"]["worktrees"] >= 4096
    assert any("artifacts kept" in note for note in document["notes"])
    assert h.dead.is_dir()  # a dry run

    human = uet("gc", "--offline", "--dry-run", home=h.home)
    assert human.returncode == 0, human.stderr
    assert "would remove 9 items" in human.stdout and "uet uses worktrees" in human.stdout

    removed = uet("gc", "--offline", home=h.home)
    assert removed.returncode == 0, removed.stderr
    assert "removed 9 items" in removed.stdout
    assert not h.dead.exists() and (h.live / "tree" / "f.txt").is_file()
    assert branch_ref(integration_branch(OPEN)) in h.refs()
    assert branch_ref(integration_branch(CLOSED)) not in h.refs()

    # Once the open run has ended (and its last activities with it), what nobody uses goes.
    shutil.rmtree(h.live)
    shutil.rmtree(h.foreign_new)
    report(h.home, OPEN, "completed", h.repo, NOW)
    last = uet("gc", "--offline", "--json", home=h.home)
    assert last.returncode == 0, last.stderr
    gone = {Path(i["path"]).name for i in json.loads(last.stdout)["items"]}
    assert h.blob("open_input").name in gone and h.blob("unused_old").name in gone
    assert not h.blob("unused_old").exists() and h.blob("patch").is_file()
    assert not (h.home / "worktrees" / OPEN).exists()  # closed: its checkouts go


def test_uet_gc_refuses_without_temporal_unless_offline(tmp_path: Path):
    result = uet("gc", "--dry-run", home=tmp_path / "home")
    assert result.returncode == 3
    assert result.stderr.count("\n") == 1 and "--offline" in result.stderr
    bad = uet("gc", "--older-than", "soon", home=tmp_path / "home")
    assert bad.returncode == 2 and "'soon' is not a time span" in bad.stderr


async def test_open_runs_and_what_they_use_come_from_temporal(
    client, settings, monkeypatch, tmp_path: Path, make_repo
):  # type: ignore[no-untyped-def]
    """A run whose workflow is open (no worker serves its queue, so it stays open) is open,
    and the artifacts its history names are in use."""
    store = StateDir(tmp_path / "home").artifacts
    used = store.put_bytes(b"a patch file the run was started with\n")
    spec = phase(
        workstreams=[
            {"workstream_id": "ws", "execution_request": {"tool_id": "codex", "prompt": "x"}}
        ]
    )
    input = run_input(spec, make_repo({"a.txt": "a\n"}))
    input.patch_files = {"fix.diff": used}
    handle = await client.start_workflow(
        PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=settings.task_queue
    )
    monkeypatch.setenv("TEMPORAL_ADDRESS", client.service_client.config.target_host)
    monkeypatch.setenv("TEMPORAL_NAMESPACE", client.namespace)
    try:
        for _ in range(50):  # visibility lags a little behind
            open_ids, artifacts = await _open_runs()
            if input.run_id in open_ids:
                break
            await asyncio.sleep(0.1)
        assert input.run_id in open_ids
        assert artifacts is not None and used.sha256 in artifacts
    finally:
        await handle.terminate("test over")


def test_a_closed_runs_scratch_space_goes_at_once_and_its_files_right_after(tmp_path: Path):
    state = StateDir(tmp_path / "home")
    scratch = state.scratch("R1", "ws-a", "tool-1")
    (scratch / "sandbox" / "home").mkdir(parents=True)
    (scratch / "tool.log").write_text("done\n")

    async def close() -> list[Path]:
        state.drop_run_dir("R1")
        left = list((tmp_path / "home" / "worktrees").iterdir())
        state.drop_run_dir("R1")  # a retry of close_run: nothing to do, no error
        return left

    # As asyncio.run ends it waits for the thread that removes the files.
    (aside,) = asyncio.run(close())
    assert not state.run_dir("R1").exists()
    assert aside.name.startswith(".tmp-closed-R1-")  # what `uet gc` collects if left
    assert not aside.exists()
