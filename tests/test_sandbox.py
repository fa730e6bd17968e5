"""The OS sandbox (activities/lib/sandbox.py) with real processes through ``run_process``:
hostile programs are refused or contained, limits are enforced and named, legitimate work in
the checkout still works, and nothing of a sandboxed tree outlives a timeout or a cancel.

The world of these tests (the user's repository, uet's state dir with its artifact store, the
checkout and another one in the pool) lives under /var/tmp, not under pytest's tmp_path: that
is in /tmp, which the sandbox replaces as a whole, and would make every "not visible" pass
for the wrong reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import git
from temporalio.exceptions import ApplicationError

from activities.lib import sandbox as sandbox_lib
from activities.lib.git import checkout, open_repository
from activities.lib.process import ProcessResult, _launch, run_process
from activities.lib.sandbox import SandboxPlan, Seed, plan_sandbox, probe
from schemas.sandbox import SandboxSpec

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandbox")

PY = sys.executable


@dataclass
class World:
    base: Path
    user: Path  # the user's repository (work tree)
    uet_home: Path
    artifacts: Path
    checkout: Path  # this step's checkout
    other: Path  # another workstream's checkout, in the pool
    scratch: Path
    home: Path  # the worker's home: the real one

    def plan(self, network_default: bool = False, **spec: Any) -> SandboxPlan:
        return plan_sandbox(
            SandboxSpec.model_validate(spec),
            checkout=self.checkout,
            object_store=self.user / ".git" / "objects",
            scratch=self.scratch,
            uet_home=self.uet_home,
            user_tree=self.user,
            network_default=network_default,
            env=os.environ,
        )

    async def run(
        self, command: str | list[str], plan: SandboxPlan | None = None, timeout_s: float = 30
    ) -> ProcessResult:
        return await run_process(
            command,
            cwd=self.checkout,
            env={"PATH": os.environ["PATH"], "LC_ALL": "C", "HOME": str(self.home)},
            timeout_s=timeout_s,
            log_path=self.base / f"log-{uuid.uuid4().hex[:6]}",
            sandbox=plan if plan is not None else self.plan(),
        )


def tree_state(root: Path) -> dict[str, tuple[int, str]]:
    """Every path under ``root`` (``.git`` included): its mode and content hash."""
    state: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = ""
        if stat.S_ISREG(info.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(info.st_mode):
            digest = os.readlink(path)
        state[str(path.relative_to(root))] = (info.st_mode, digest)
    return state


def survivors(token: str) -> list[str]:
    """Processes whose command line mentions ``token``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if token in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


@pytest.fixture
async def world() -> AsyncIterator[World]:
    base = Path(tempfile.mkdtemp(prefix="uet-sandbox-", dir="/var/tmp"))
    try:
        user = base / "project"
        user.mkdir()
        git(user, "init", "-q", "-b", "main")
        (user / "README").write_text("the user's readme\n")
        (user / "src").mkdir()
        (user / "src" / "app.py").write_text("print('app')\n")
        git(user, "add", "-A")
        git(user, "commit", "-q", "-m", "initial")
        (user / "notes.txt").write_text("untracked work in progress\n")
        sha = git(user, "rev-parse", "HEAD")
        uet_home = base / "uet-home"
        artifacts = uet_home / "artifacts" / "sha256" / "ab"
        artifacts.mkdir(parents=True)
        (artifacts / "blob").write_text("an artifact\n")
        repo = await open_repository(user)
        mine = uet_home / "worktrees" / "run-1" / "ws-a" / "tree"
        other = uet_home / "pool" / "0123abcd" / "1" / "tree"
        for path in (mine, other):
            path.mkdir(parents=True)
            await checkout(repo, sha, path)
        yield World(
            base=base,
            user=user,
            uet_home=uet_home,
            artifacts=artifacts,
            checkout=mine,
            other=other,
            scratch=uet_home / "worktrees" / "run-1" / "ws-a" / "sandbox",
            home=Path.home(),
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- can it run ---------------------------------------------------------------------------


def test_bwrap_runs_here() -> None:
    # CI installs bubblewrap: a machine where it cannot run must fail here, not skip.
    assert probe() is None


async def test_missing_bwrap_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, world: World
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    problem = probe()
    assert problem is not None and "\n" not in problem
    assert "not installed" in problem and "bubblewrap" in problem and "mode: none" in problem
    # Never silently unsandboxed: a plan that asks for bwrap fails; one that does not, runs.
    with pytest.raises(ApplicationError) as raised:
        world.plan()
    assert raised.value.type == "SandboxUnavailable" and raised.value.non_retryable
    assert world.plan(mode="none").prefix == ()


def test_bwrap_without_user_namespaces_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "bin" / "bwrap"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the "
        "kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    problem = probe()
    assert problem is not None and "\n" not in problem
    assert problem.startswith("bubblewrap cannot create a user namespace")
    assert "mode: none" in problem


def test_spec_paths_and_limits_are_validated() -> None:
    spec = SandboxSpec.model_validate(
        {"readable": ["~/.cache/pip/", "/opt//shared"], "limits": {"memory_mb": 64, "pids": 50}}
    )
    assert spec.readable == ["~/.cache/pip", "/opt/shared"] and spec.network is None
    assert spec.mode == "auto" and spec.limits.any() and not SandboxSpec().limits.any()
    for bad in ("relative/dir", "~", "/", "/opt/../etc", "~user/x"):
        with pytest.raises(ValueError):
            SandboxSpec.model_validate({"writable": [bad]})
    for limits in ({"pids": 0}, {"memory_mb": -1}, {"cpu_s": 0}, {"file_mb": 0}, {"nice": 1}):
        with pytest.raises(ValueError):
            SandboxSpec.model_validate({"limits": limits})
    with pytest.raises(ValueError):
        SandboxSpec.model_validate({"mode": "docker"})


# --- what a hostile tool cannot reach -------------------------------------------------------


async def test_the_user_work_tree_through_the_alternates_path(world: World) -> None:
    before = tree_state(world.user)
    script = (
        "objects=$(cat .git/objects/info/alternates); user=${objects%/.git/objects}; "
        'echo "user tree: $user"; ls -A "$user"; '
        'cat "$user/README" && echo READ-README; cat "$user/.git/config" && echo READ-CONFIG; '
        'echo pwned > "$user/PWNED.txt" && echo WROTE-PWNED; '
        'rm "$user/README" && echo REMOVED-README; '
        'echo "[core] hooksPath=/tmp" >> "$user/.git/config" && echo WROTE-CONFIG; '
        'rm -rf "$objects"/* && echo REMOVED-OBJECTS; '
        'touch "$objects/planted" && echo PLANTED; exit 0'
    )
    result = await world.run(script)
    assert result.exit_code == 0, result.tail
    assert f"user tree: {world.user}" in result.tail
    for done in ("READ-README", "READ-CONFIG", "WROTE-PWNED", "REMOVED-README", "WROTE-CONFIG"):
        assert done not in result.tail, result.tail
    assert "REMOVED-OBJECTS" not in result.tail and "PLANTED" not in result.tail
    assert "Read-only file system" in result.tail
    assert tree_state(world.user) == before
    assert git(world.user, "status", "--porcelain") == "?? notes.txt"


async def test_the_state_dir_and_other_checkouts_are_not_visible(world: World) -> None:
    before = (tree_state(world.uet_home / "artifacts"), tree_state(world.other))
    blob = world.artifacts / "blob"
    script = (
        f"ls -A {world.uet_home}; ls {world.artifacts} && echo SAW-ARTIFACTS; "
        f"cat {blob} && echo READ-BLOB; echo x > {blob} && echo WROTE-BLOB; "
        f"rm -r {world.uet_home}/artifacts && echo REMOVED-STORE; "
        f"ls {world.other} && echo SAW-OTHER; echo x >> {world.other}/README && echo WROTE-OTHER; "
        f"ls -A {world.scratch} && echo SAW-SCRATCH; exit 0"
    )
    result = await world.run(script)
    assert result.exit_code == 0, result.tail
    for done in ("SAW-ARTIFACTS", "READ-BLOB", "WROTE-BLOB", "REMOVED-STORE"):
        assert done not in result.tail, result.tail
    assert "SAW-OTHER" not in result.tail and "WROTE-OTHER" not in result.tail
    assert "SAW-SCRATCH" not in result.tail
    # Only the way down to this checkout is left of the state dir.
    assert result.tail.splitlines()[0].split() == ["worktrees"]
    assert (tree_state(world.uet_home / "artifacts"), tree_state(world.other)) == before


async def test_home_and_tmp_are_private(world: World) -> None:
    name = f"uet-sandbox-test-{uuid.uuid4().hex[:8]}"
    real_home, real_tmp = world.home / name, Path("/tmp") / name
    try:
        script = (
            f'echo home > "$HOME/{name}" && echo home-abs > {real_home}.abs && '
            f'echo tmp > /tmp/{name} && echo tmpdir > "$TMPDIR/{name}.tmpdir" && '
            'echo "HOME=$HOME TMPDIR=$TMPDIR" && ls -A "$HOME"'
        )
        result = await world.run(script)
        assert result.exit_code == 0, result.tail
        assert f"HOME={world.home} TMPDIR=/tmp" in result.tail
        assert not real_home.exists() and not Path(f"{real_home}.abs").exists()
        assert not real_tmp.exists() and not Path(f"{real_tmp}.tmpdir").exists()
        plan_home, plan_tmp = world.scratch / "home", world.scratch / "tmp"
        assert (plan_home / name).read_text() == "home\n"
        assert (plan_home / f"{name}.abs").read_text() == "home-abs\n"
        assert (plan_tmp / name).read_text() == "tmp\n"
        assert (plan_tmp / f"{name}.tmpdir").read_text() == "tmpdir\n"
    finally:
        for path in (real_home, Path(f"{real_home}.abs"), real_tmp, Path(f"{real_tmp}.tmpdir")):
            path.unlink(missing_ok=True)


async def test_no_capabilities_and_no_host_sysctls(world: World) -> None:
    hidden = world.uet_home
    script = (
        "grep CapEff /proc/self/status; "
        "cat /proc/sys/vm/swappiness > /proc/sys/vm/swappiness && echo WROTE-SYSCTL; "
        f"umount {hidden} && echo UNMOUNTED; mount -o remount,rw / && echo REMOUNTED; "
        "ls /run; ls /proc | grep -c '^[0-9]'; exit 0"
    )
    result = await world.run(script)
    assert "CapEff:\t0000000000000000" in result.tail, result.tail
    for done in ("WROTE-SYSCTL", "UNMOUNTED", "REMOUNTED"):
        assert done not in result.tail, result.tail
    # Its own pid namespace: bwrap's reaper, the shell, ls and grep at most.
    assert int(result.tail.strip().splitlines()[-1]) <= 5


async def test_network_off_refuses_and_on_connects(world: World) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello from the host\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = (
        "import socket\n"
        f"s = socket.create_connection(('127.0.0.1', {port}), timeout=5)\n"
        "print('GOT', s.recv(100).decode().strip())\n"
    )
    try:
        off = await world.run([PY, "-c", client], world.plan(network_default=False))
        assert off.exit_code != 0 and "GOT" not in off.tail
        assert "ConnectionRefusedError" in off.tail or "unreachable" in off.tail, off.tail
        on = await world.run([PY, "-c", client], world.plan(network_default=False, network=True))
        assert on.exit_code == 0 and "GOT hello from the host" in on.tail, on.tail
        # The spec's network wins over the caller's default, both ways.
        also_off = await world.run([PY, "-c", client], world.plan(True, network=False))
        assert also_off.exit_code != 0 and "GOT" not in also_off.tail
    finally:
        server.close()
        await server.wait_closed()


# --- limits ----------------------------------------------------------------------------------


def needs_cgroup(controller: str) -> None:
    """Memory and process limits of a tree need a cgroup: without one (the RLIMIT fallback)
    there is nothing to contain a fork bomb with, for root, nor a counter to name the limit."""
    if controller not in sandbox_lib.cgroup_places():
        pytest.skip(f"no writable {controller} cgroup here")


async def test_a_fork_bomb_is_contained_by_pids(world: World) -> None:
    needs_cgroup("pids")
    token = f"uet-bomb-{uuid.uuid4().hex[:8]}"
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(survivors(token)))
            await asyncio.sleep(0.05)

    # Every process forks two that do the same, to a depth of 9 (1023 processes if nothing
    # holds it: a bomb, but one that cannot take the host down when the limit is broken).
    # A shell whose fork is refused exits: the first one execs a sleep (no fork) and waits.
    bomb = f"b() {{ [ $1 -lt 9 ] && {{ b $(($1+1)) & b $(($1+1)) & }}; sleep 20; }}; (b 0) & exec sleep 20 # {token}"
    watcher = asyncio.create_task(watch())
    started = time.monotonic()
    try:
        result = await world.run(bomb, world.plan(limits={"pids": 50}), timeout_s=3)
    finally:
        watcher.cancel()
    assert result.limit_hit == "pids", result
    assert result.timed_out and time.monotonic() - started < 15
    assert 10 < peak <= 50 + sandbox_lib.BWRAP_PIDS, peak
    await asyncio.sleep(0.5)
    assert survivors(token) == []


async def test_memory_past_its_limit_is_killed_and_named(world: World) -> None:
    needs_cgroup("memory")
    hog = "data = b'x' * (256 << 20)\nprint('ALLOCATED', len(data))\n"
    result = await world.run([PY, "-c", hog], world.plan(limits={"memory_mb": 64}))
    assert result.exit_code != 0 and "ALLOCATED" not in result.tail
    assert result.limit_hit == "memory", result
    # Under the limit the same program is fine, and nothing is reported.
    small = await world.run([PY, "-c", hog], world.plan(limits={"memory_mb": 600}))
    assert small.exit_code == 0 and small.limit_hit is None, small.tail


async def test_cpu_time_past_its_limit(world: World) -> None:
    started = time.monotonic()
    result = await world.run("while :; do :; done", world.plan(limits={"cpu_s": 1}))
    assert result.limit_hit == "cpu", result
    assert not result.timed_out and time.monotonic() - started < 10


async def test_file_size_past_its_limit(world: World) -> None:
    plan = world.plan(limits={"file_mb": 1})
    shell = await world.run("head -c 5000000 /dev/zero > big.bin", plan)
    assert shell.limit_hit == "file_size", shell
    assert (world.checkout / "big.bin").stat().st_size <= 1 << 20
    # Python ignores SIGXFSZ: its write fails with EFBIG instead.
    python = await world.run([PY, "-c", "open('big2.bin', 'wb').write(b'x' * 5_000_000)"], plan)
    assert python.exit_code == 1 and python.limit_hit == "file_size", python


async def test_limits_hold_without_the_sandbox_too(world: World) -> None:
    needs_cgroup("memory")
    plan = world.plan(mode="none", limits={"memory_mb": 64})
    assert plan.prefix == () and plan.env == {}
    result = await world.run([PY, "-c", "data = b'x' * (256 << 20)"], plan)
    assert result.exit_code != 0 and result.limit_hit == "memory", result


async def test_cgroups_are_removed_afterwards(world: World) -> None:
    needs_cgroup("pids")
    places = sandbox_lib.cgroup_places()
    mine = f"uet-{os.getpid()}-"

    def ours() -> list[Path]:
        return [c for p in places.values() for c in p.parent.iterdir() if c.name.startswith(mine)]

    await world.run("sleep 30 &", world.plan(limits={"memory_mb": 100, "pids": 20}))
    assert ours() == []


# --- legitimate work ---------------------------------------------------------------------------


async def test_legitimate_work_in_the_checkout(world: World) -> None:
    script = (
        "echo 'changed by the tool' >> README && "
        "git -c core.hooksPath=/dev/null status --porcelain && "
        "git --no-pager diff --stat && "
        "git show HEAD:src/app.py && "
        "git log --oneline | wc -l && "
        "mkdir -p build && echo out > build/x.txt"
    )
    result = await world.run(script)
    assert result.exit_code == 0, result.tail
    assert " M README" in result.tail and "1 file changed" in result.tail
    assert "print('app')" in result.tail
    assert (world.checkout / "build" / "x.txt").read_text() == "out\n"
    assert "changed by the tool" in (world.checkout / "README").read_text()
    # The user's copy is not touched.
    assert (world.user / "README").read_text() == "the user's readme\n"


async def test_readable_and_writable_paths(world: World) -> None:
    shared = world.base / "shared-cache"
    shared.mkdir()
    (shared / "pkg.tar").write_text("cached package\n")
    rw = world.base / "rw-cache"
    plan = world.plan(readable=[str(shared)], writable=[str(rw)])
    result = await world.run(
        f"cat {shared}/pkg.tar && (touch {shared}/new && echo WROTE-SHARED); "
        f"echo built > {rw}/artifact && echo WROTE-RW; exit 0",
        plan,
    )
    assert "cached package" in result.tail and "WROTE-RW" in result.tail
    assert "WROTE-SHARED" not in result.tail and not (shared / "new").exists()
    assert (rw / "artifact").read_text() == "built\n"
    # A path that would show what must stay hidden is refused, inside or around it.
    for bad in (str(world.artifacts), str(world.base), str(world.user / "src")):
        with pytest.raises(ApplicationError) as raised:
            world.plan(readable=[bad])
        assert raised.value.type == "SandboxInvalid"


async def test_seeds_in_the_private_home(world: World) -> None:
    config = world.base / "claude-config"
    config.mkdir()
    (config / "settings.json").write_text('{"theme": "dark"}\n')
    plan = plan_sandbox(
        SandboxSpec(),
        checkout=world.checkout,
        object_store=world.user / ".git" / "objects",
        scratch=world.scratch,
        uet_home=world.uet_home,
        user_tree=world.user,
        network_default=False,
        seeds=[Seed(config, ".claude"), Seed(config, ".config/ro", copy=False)],
    )
    result = await world.run(
        'cat "$HOME/.claude/settings.json" && echo "{}" > "$HOME/.claude/settings.json" && '
        'echo COPY-WRITABLE; cat "$HOME/.config/ro/settings.json" && '
        '(echo x > "$HOME/.config/ro/settings.json" && echo WROTE-BOUND); exit 0',
        plan,
    )
    assert result.tail.count('"theme": "dark"') == 2, result.tail
    assert "COPY-WRITABLE" in result.tail and "WROTE-BOUND" not in result.tail
    assert (config / "settings.json").read_text() == '{"theme": "dark"}\n'


async def test_exposed_paths_of_uet_are_reachable(world: World) -> None:
    step = world.uet_home / "worktrees" / "run-1" / "ws-a" / "scratch"
    step.mkdir(parents=True)
    (step / "message.md").write_text("the task\n")
    plan = plan_sandbox(
        SandboxSpec(),
        checkout=world.checkout,
        object_store=world.user / ".git" / "objects",
        scratch=world.scratch,
        uet_home=world.uet_home,
        user_tree=world.user,
        network_default=False,
        exposed=[step, world.uet_home / "no-such-dir"],
    )
    result = await world.run(
        f"cat {step}/message.md && echo chat > {step}/history.md && ls {world.artifacts}", plan
    )
    assert "the task" in result.tail and (step / "history.md").read_text() == "chat\n"
    assert result.exit_code != 0, "the rest of the state dir stays hidden"


async def test_a_missing_program_is_not_found(world: World) -> None:
    result = await world.run(["uet-no-such-program"])
    assert result.not_found and result.exit_code is None
    shell = await world.run("uet-no-such-program --flag")
    assert shell.not_found and shell.exit_code == 127


# --- nothing survives ----------------------------------------------------------------------------


async def test_timeout_without_the_sandbox_is_as_quick(world: World) -> None:
    # mode: none has no bwrap to spare: the SIGTERM goes to the whole group, leader included.
    started = time.monotonic()
    result = await world.run("sleep 30", world.plan(mode="none", limits={"cpu_s": 10}), 0.3)
    assert result.timed_out and time.monotonic() - started < 3


def _escapers(world: World, token: str) -> str:
    """A background child, one that leaves the process group and one that double-forks."""
    one, two, three = (world.checkout / f"survived-{n}" for n in (1, 2, 3))
    return (
        f"(sleep 1.5; touch {one}) & "
        f"setsid sh -c 'sleep 1.5; touch {two}' & "
        f"sh -c '(sleep 1.5; touch {three}) &' ; "
        f"sleep 30 # {token}"
    )


async def test_timeout_kills_the_whole_sandboxed_tree(world: World) -> None:
    token = f"uet-tree-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result = await world.run(_escapers(world, token), timeout_s=0.5)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 10
    await asyncio.sleep(2)
    assert sorted(world.checkout.glob("survived-*")) == []
    assert survivors(token) == []


async def test_cancellation_kills_the_whole_sandboxed_tree(world: World) -> None:
    token = f"uet-cancel-{uuid.uuid4().hex[:8]}"
    task = asyncio.create_task(world.run(_escapers(world, token), timeout_s=60))
    await asyncio.sleep(0.5)
    assert survivors(token), "the tree should be running by now"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(2)
    assert sorted(world.checkout.glob("survived-*")) == []
    assert survivors(token) == []


#: A worker that runs one command under a plan and waits: the test SIGKILLs it.
_DOOMED_WORKER = """
import asyncio, json, os, sys
from pathlib import Path
from activities.lib.process import run_process
from activities.lib.sandbox import plan_sandbox
from schemas.sandbox import SandboxSpec
w = json.loads(sys.argv[1])
plan = None if w["spec"] is None else plan_sandbox(
    SandboxSpec.model_validate(w["spec"]), checkout=Path(w["checkout"]),
    object_store=Path(w["objects"]), scratch=Path(w["scratch"]), uet_home=Path(w["home"]),
    user_tree=Path(w["user"]), network_default=False, env=os.environ)
asyncio.run(run_process(w["command"], cwd=Path(w["checkout"]), env={"PATH": os.environ["PATH"]},
    timeout_s=60, log_path=Path(w["log"]), sandbox=plan))
"""


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"mode": "none"},
        {"mode": "none", "limits": {"cpu_s": 30}},
        {},
        {"limits": {"cpu_s": 30}},
    ],
    ids=["no-plan", "none", "none-limits", "bwrap", "bwrap-limits"],
)
async def test_a_killed_worker_takes_its_command_with_it(
    world: World, spec: dict[str, Any] | None
) -> None:
    """SIGKILL gives the worker no time to clean up: the kernel must end its command (the
    parent-death signal, set by setpriv, bwrap or the forked child, whichever starts it)."""
    token = f"uet-orphan-{uuid.uuid4().hex[:8]}"
    started = world.checkout / "started"
    args = {
        "spec": spec,
        "command": f"touch {started}; sleep 30 # {token}",
        "checkout": str(world.checkout),
        "objects": str(world.user / ".git" / "objects"),
        "scratch": str(world.scratch),
        "home": str(world.uet_home),
        "user": str(world.user),
        "log": str(world.base / "doomed.log"),
    }
    doomed = subprocess.Popen(
        [PY, "-c", _DOOMED_WORKER, json.dumps(args)], cwd=Path(__file__).resolve().parent.parent
    )
    try:
        for _ in range(200):
            if started.exists():
                break
            await asyncio.sleep(0.05)
        assert started.exists(), "the command never started"
        assert survivors(token), "the command should be running"
        doomed.kill()
        doomed.wait(timeout=10)
        for _ in range(50):
            if not survivors(token):
                break
            await asyncio.sleep(0.1)
        assert survivors(token) == [], "the command outlived its worker"
    finally:
        if doomed.poll() is None:
            doomed.kill()


def test_the_child_runs_python_only_for_limits(world: World) -> None:
    """Code before exec makes Python fork the whole worker (vfork otherwise): only joining
    cgroups and setting rlimits need it."""
    for spec, forks in (({}, False), ({"mode": "none"}, False), ({"limits": {"cpu_s": 5}}, True)):
        plan = world.plan(**spec)
        run = plan.start()
        launch, child_setup = _launch(["true"], world.checkout, plan, run)
        assert (child_setup is not None) == forks, spec
        assert subprocess.run(launch, cwd=world.checkout, check=False).returncode == 0


async def test_a_timeout_still_lets_the_tool_stop_itself(world: World) -> None:
    # The command stays in bwrap's process group, so it gets the SIGTERM before the SIGKILL.
    result = await world.run(
        "trap 'echo stopped > stopped.txt; exit 0' TERM; sleep 30 & wait", timeout_s=0.5
    )
    assert result.timed_out
    assert (world.checkout / "stopped.txt").read_text() == "stopped\n"


def test_layout_order() -> None:
    """The mounts that hide come before the binds that must stay visible, and are made
    read-only after them (a later mount covers an earlier one)."""
    base = Path(tempfile.mkdtemp(prefix="uet-sandbox-", dir="/var/tmp"))
    try:
        uet_home, user = base / "home", base / "user"
        tree = uet_home / "worktrees" / "r" / "tree"
        for path in (tree, user / ".git" / "objects"):
            path.mkdir(parents=True)
        plan = plan_sandbox(
            SandboxSpec(),
            checkout=tree,
            object_store=user / ".git" / "objects",
            scratch=base / "scratch",
            uet_home=uet_home,
            user_tree=user,
            network_default=True,
        )
        args = list(plan.prefix)
        assert args[-1] == "--" and "--unshare-net" not in args
        assert {"--cap-drop", "--die-with-parent", "--unshare-pid"} <= set(args)
        tmpfs = [args[i + 1] for i, a in enumerate(args) if a == "--tmpfs"]
        assert str(uet_home) in tmpfs and str(user) in tmpfs
        hide = args.index(str(uet_home))
        bind = next(i for i, a in enumerate(args) if a == "--bind" and args[i + 1] == str(tree))
        assert hide < bind < args.index("--remount-ro")
        assert args[-3:] == ["--chdir", str(tree), "--"]
        assert plan.wrap(["true"], tree / "sub")[-4:] == [
            "--chdir",
            str(tree / "sub"),
            "--",
            "true",
        ]
        assert subprocess.run(plan.wrap(["true"], tree), check=False).returncode == 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_programs_installed_in_the_home_are_found_again_when_path_changes(
    tmp_path: Path,
) -> None:
    """The toolchain a step's PATH needs is kept between steps, and found again once a PATH
    directory changes: a tool installed into the home after the worker started is shown."""
    home = tmp_path / "home"
    shims, node = home / "shims", home / ".local" / "node" / "bin"
    shims.mkdir(parents=True)
    node.mkdir(parents=True)
    (node / "node").write_text("#!/bin/sh\n")
    path_env = f"{shims}:/usr/bin"

    def found() -> set[str]:
        return set(sandbox_lib._toolchain(path_env, [str(home)]))

    assert found() == {str(shims)}
    assert found() == {str(shims)}  # kept
    time.sleep(0.05)  # past the filesystem's timestamp granularity
    (shims / "node").symlink_to(node / "node")
    assert found() == {str(shims), str(node)}
    time.sleep(0.05)
    (shims / "node").unlink()
    assert found() == {str(shims)}
