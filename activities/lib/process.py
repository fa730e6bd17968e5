"""Running user commands (tools, gates): own process group, heartbeats, time limit, bounded log.

The process group is what makes cancellation real: ``/bin/sh -c "pytest"`` forks, and killing
only the shell would leave pytest running. On timeout or activity cancellation the whole group
gets SIGTERM, then SIGKILL after a grace period.

With a sandbox plan (activities/lib/sandbox.py) the command runs under bubblewrap, with the
plan's rlimits and in its cgroups; whatever is left in those when it ends is killed (a child
that left the process group cannot leave its cgroup), and the result says which limit a failed
run went over.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from temporalio import activity

from activities.lib import child_watcher
from activities.lib.redact import redact, redact_file, secret_values
from activities.lib.sandbox import SandboxPlan, SandboxRun
from schemas.sandbox import LimitName
from schemas.spec import Command

TAIL_BYTES = 4096
DEFAULT_LOG_LIMIT = 64 << 20
KILL_GRACE_S = 5.0
DRAIN_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None: it never started or was killed by us on timeout
    timed_out: bool
    not_found: bool
    duration_s: float
    tail: str
    log_path: Path
    #: The sandbox limit a failed run went over (reason code ``limit_<name>``), or None.
    limit_hit: LimitName | None = None


def exit_description(code: int | None) -> str:
    """``command exited with 1``, or ``command was killed by signal 11 (SIGSEGV)``."""
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown"
        return f"command was killed by signal {-code} ({name})"
    return f"command exited with {code}"


#: How shells say a program is missing: dash ``/bin/sh: 1: pytestt: not found``, bash
#: ``bash: line 1: pytestt: command not found``, busybox ``sh: pytestt: not found``.
_SHELL_NOT_FOUND = re.compile(r"^.*?:\s*(?:line )?(?:\d+: )?([^\s:]+): (?:command )?not found\s*$")


def missing_program(command: Command, result: ProcessResult) -> str | None:
    """The program a command could not start because it is not installed (or not on PATH),
    or None. A missing *path* inside the checkout (``./build.sh``) is not reported: the change
    itself may be meant to create it."""
    if not result.not_found:
        return None
    name = None
    if isinstance(command, str):
        for line in reversed(result.tail.splitlines()):
            if match := _SHELL_NOT_FOUND.match(line):
                name = match.group(1)
                break
        if name is None:
            words = command.split()
            name = words[0] if words else command
    else:
        name = command[0] if command else ""
    if "/" in name and not name.startswith("/"):
        return None
    return name


def argv_for(command: Command) -> list[str]:
    """A string runs under /bin/sh -c (pipes, globs, &&); a list is argv as written."""
    return ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)


async def run_process(
    command: Command,
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    log_path: Path,
    log_limit: int = DEFAULT_LOG_LIMIT,
    heartbeat_every_s: float | None = None,
    stdin_path: Path | None = None,
    stdout_path: Path | None = None,
    sandbox: SandboxPlan | None = None,
) -> ProcessResult:
    """Run ``command``; its output (stderr, and stdout unless ``stdout_path`` takes it apart
    for structured parsing) goes to ``log_path``. ``stdin_path`` feeds its standard input:
    prompts travel as files, never through a shell string. ``sandbox``: run it under that plan
    (its argv prefix, environment and limits)."""
    started = time.monotonic()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    argv = argv_for(command)
    run: SandboxRun | None = None
    if sandbox is not None:
        env = {**env, **sandbox.env}
        run = sandbox.start()
    try:
        return await _run(
            command,
            argv,
            cwd=cwd,
            env=env,
            timeout_s=timeout_s,
            log_path=log_path,
            log_limit=log_limit,
            heartbeat_every_s=heartbeat_every_s,
            stdin_path=stdin_path,
            stdout_path=stdout_path,
            sandbox=sandbox,
            run=run,
            started=started,
        )
    finally:
        if run is not None:
            await run.close()


async def _run(
    command: Command,
    argv: list[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    log_path: Path,
    log_limit: int,
    heartbeat_every_s: float | None,
    stdin_path: Path | None,
    stdout_path: Path | None,
    sandbox: SandboxPlan | None,
    run: SandboxRun | None,
    started: float,
) -> ProcessResult:
    # Our own pipe rather than asyncio's: asyncio's Process.wait() also waits for its pipes to
    # close, which a daemonised grandchild holding stdout would delay forever. Owning the read
    # end, we can stop reading and close it whatever the children do.
    read_fd, write_fd = os.pipe()
    with contextlib.ExitStack() as files:
        stdin = files.enter_context(stdin_path.open("rb")) if stdin_path else None
        stdout = files.enter_context(stdout_path.open("wb")) if stdout_path else None
        try:
            launch, child_setup = _launch(argv, cwd, sandbox, run)
            child_watcher.ensure()
            proc = await asyncio.create_subprocess_exec(
                *launch,
                cwd=str(cwd),
                env=dict(env),
                stdin=stdin or asyncio.subprocess.DEVNULL,
                stdout=stdout or write_fd,
                stderr=write_fd,
                start_new_session=True,
                preexec_fn=child_setup,
            )
        except (FileNotFoundError, PermissionError) as exc:
            os.close(read_fd)
            log_path.write_text(f"{exc}\n")
            return ProcessResult(None, False, True, 0.0, str(exc), log_path)
        finally:
            os.close(write_fd)

    output = _Output(log_path, log_limit)
    reader = asyncio.StreamReader()
    transport, _ = await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    pump = asyncio.create_task(output.pump(reader))
    beat = asyncio.create_task(_heartbeat(heartbeat_every_s, started))
    timed_out = False
    try:
        await asyncio.wait_for(proc.wait(), timeout=timeout_s)
    except TimeoutError:
        timed_out = True
        await _kill_group(proc, spare_leader=bool(sandbox and sandbox.prefix))
    except BaseException:
        # Activity cancelled (or worker shutting down): the tool must not outlive us.
        await _kill_group(proc, spare_leader=bool(sandbox and sandbox.prefix))
        raise
    finally:
        beat.cancel()
        # Background children that inherited stdout die with the group ...
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        # ... and whatever left it, with its cgroup ...
        if run is not None:
            await run.kill()
        # ... and one that left the group (setsid) cannot keep us reading.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(pump), timeout=DRAIN_TIMEOUT_S)
        pump.cancel()
        transport.close()
    exit_code = None if timed_out else proc.returncode
    not_found = exit_code == 127 and isinstance(command, str)
    if (sandbox is not None and exit_code == 1 and sandbox.exec_failed(output.tail, argv[0])) or (
        exit_code in (126, 127) and _setpriv_failed(launch, output.tail, argv[0])
    ):
        # bwrap or setpriv could not start the program: what the exec error above is when the
        # worker starts it itself.
        exit_code, not_found = None, True
    limit_hit = None
    if run is not None:
        limit_hit = await run.finish(exit_code, timed_out, output.tail)
    # Whatever the command printed of its environment's secrets stops here.
    secrets = secret_values(env)
    redact_file(log_path, secrets)
    if stdout_path is not None:
        redact_file(stdout_path, secrets)
    return ProcessResult(
        exit_code,
        timed_out,
        not_found,
        time.monotonic() - started,
        redact(output.tail, secrets),
        log_path,
        limit_hit,
    )


def _launch(
    argv: list[str], cwd: Path, sandbox: SandboxPlan | None, run: SandboxRun | None
) -> tuple[list[str], Callable[[], None] | None]:
    """What to start, and the code the child runs before exec (None: nothing).

    Code in the child means a real fork of the worker: ~7 ms a process for a worker of a few
    hundred MiB, against ~1 ms for the vfork Python uses when there is none. So the child runs
    Python only for what nothing else can do, joining cgroups and taking on rlimits (limits
    asked for). Dying with the worker needs none: bwrap's ``--die-with-parent`` does it in the
    sandbox, util-linux's ``setpriv --pdeathsig`` outside it."""
    if run is not None and run.needs_child_setup():
        launch = sandbox.wrap(argv, cwd) if sandbox is not None else list(argv)
        return launch, functools.partial(_child_setup, run.preexec)
    if sandbox is not None and sandbox.prefix:
        assert "--die-with-parent" in sandbox.prefix
        return sandbox.wrap(argv, cwd), None
    setpriv = _setpriv()
    if setpriv is None:
        return list(argv), functools.partial(_child_setup, None)
    return [setpriv, "--pdeathsig", "KILL", "--", *argv], None


@functools.cache
def _setpriv() -> str | None:
    """util-linux's setpriv, where it has ``--pdeathsig`` (2.33 on); else None."""
    found = shutil.which("setpriv")
    if found is None or not sys.platform.startswith("linux"):
        return None
    try:
        usage = subprocess.run([found, "--help"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return found if b"--pdeathsig" in usage.stdout else None


def _setpriv_failed(launch: list[str], tail: str, argv0: str) -> bool:
    """setpriv could not exec ``argv0`` (exit 127 missing, 126 not executable)."""
    return launch[0] == _setpriv() and f"setpriv: failed to execute {argv0}:" in tail


def _child_setup(sandboxed: Callable[[], None] | None) -> None:
    """In the child before exec: die with the worker; join the sandbox's cgroups and limits."""
    _die_with_parent()
    if sandboxed is not None:
        sandboxed()


def _die_with_parent() -> None:
    """Linux: SIGKILL the command if the worker dies (SIGKILL leaves no time to clean up)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


class _Output:
    """Copies output to the log up to ``limit`` bytes, keeps reading past it so the child never
    blocks on a full pipe, and keeps the last TAIL_BYTES for messages."""

    def __init__(self, log_path: Path, limit: int) -> None:
        self.log_path = log_path
        self.limit = limit
        self.tail_bytes = b""

    @property
    def tail(self) -> str:
        return self.tail_bytes.decode("utf-8", "replace")

    async def pump(self, stream: asyncio.StreamReader) -> None:
        written = 0
        with self.log_path.open("wb") as log:
            try:
                while chunk := await stream.read(65536):
                    self.tail_bytes = (self.tail_bytes + chunk)[-TAIL_BYTES:]
                    if written < self.limit:
                        part = chunk[: self.limit - written]
                        log.write(part)
                        written += len(part)
            finally:
                if written >= self.limit:
                    log.write(f"\n[uet: output truncated after {self.limit} bytes]\n".encode())


async def _heartbeat(every_s: float | None, started: float) -> None:
    if not activity.in_activity():
        return
    if every_s is None:
        timeout = activity.info().heartbeat_timeout
        every_s = max(0.5, timeout.total_seconds() / 3) if timeout else 10.0
    while True:
        activity.heartbeat({"elapsed_s": round(time.monotonic() - started, 1)})
        await asyncio.sleep(every_s)


async def _kill_group(proc: asyncio.subprocess.Process, *, spare_leader: bool = False) -> None:
    """SIGTERM the group, SIGKILL what is left after a grace period. ``spare_leader``: the
    SIGTERM skips the leader, bwrap, which would die of it at once and take the sandbox with it
    (``--die-with-parent``, the pid namespace) before the command could stop by itself; the
    command exits, bwrap follows with its status."""
    for sig, wait_s in ((signal.SIGTERM, KILL_GRACE_S), (signal.SIGKILL, KILL_GRACE_S)):
        if sig == signal.SIGTERM and spare_leader:
            for pid in _group_members(proc.pid):
                if pid != proc.pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, sig)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), timeout=wait_s)
            break
        except TimeoutError:
            continue
    # The leader may be gone while children in its group linger: make sure none survive.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _group_members(pgid: int) -> list[int]:
    """The processes in process group ``pgid`` (from /proc; empty where it cannot be read)."""
    found = []
    with contextlib.suppress(OSError), os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    data = stat.read()
            except OSError:
                continue
            # pid (comm) state ppid pgrp …: comm may hold anything, so from its last ")".
            fields = data[data.rfind(b")") + 2 :].split()
            if len(fields) > 2 and fields[2] == str(pgid).encode():
                found.append(int(entry.name))
    return found
