"""`uet server [start|stop|status]` and `uet worker`: the processes a run needs, on this host."""

from __future__ import annotations

import argparse
import asyncio
import os

from runtime import devserver
from runtime.cli.base import command
from runtime.connect import Target, connect, target_from_env
from runtime.errors import ExitCode, UserError
from runtime.output import err, out
from runtime.plugin import serve
from runtime.settings import Settings, is_loopback


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "server",
        server,
        "the embedded Temporal server: foreground, start, stop or status",
        ["uet server", "uet server start", "uet server status", "uet server stop"],
    )
    s.add_argument(
        "action",
        nargs="?",
        choices=["start", "stop", "status"],
        help="start: in the background; stop: end it and the background worker; "
        "status: what runs (default: run it in the foreground)",
    )
    command(
        sub,
        "worker",
        worker,
        "run a worker in the foreground (same as python worker.py)",
        ["uet worker", "TEMPORAL_ADDRESS=temporal:7233 uet worker"],
    )


def server(action: str | None) -> int:
    settings = Settings.from_env()
    if action == "stop":
        stopped = [n for n in ("worker", "server") if devserver.stop_background(settings, n)]
        out.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
        return ExitCode.COMPLETED
    if action == "status":
        return _status(settings)
    if action == "start":
        return asyncio.run(_start(settings))
    target = target_from_env()
    args = devserver.server_args(settings, target.address, target.namespace)
    devserver.ensure_writable(settings.home)
    devserver.check_ports_free(settings, target.address)
    err.print(
        f"Temporal dev server on {target.address}, Web UI http://localhost:{settings.ui_port} "
        "(Ctrl-C ends it; `uet server start` runs it in the background instead)"
    )
    os.execv(args[0], args)


async def _start(settings: Settings) -> int:
    target = target_from_env()
    if not is_loopback(target.address):
        raise UserError(
            f"TEMPORAL_ADDRESS={target.address} is not on this host; the embedded server runs on "
            "a loopback address (unset TEMPORAL_ADDRESS, or set it to 127.0.0.1:PORT)"
        )
    if devserver.is_running(settings, "server"):
        pid = devserver.read_pid(settings, "server")
        out.print(
            f"the embedded Temporal server is already running (pid {pid}) on {target.address}"
        )
        return ExitCode.COMPLETED
    _, started = await devserver.connect_or_start(settings, target)
    if not started:
        out.print(f"a Temporal server already answers on {target.address}; nothing started")
        return ExitCode.COMPLETED
    out.print(devserver.left_running(settings, "server"))
    out.print(f"Web UI: http://localhost:{settings.ui_port}")
    return ExitCode.COMPLETED


def _status(settings: Settings) -> int:
    target = target_from_env()
    for name in ("server", "worker"):
        pid = devserver.read_pid(settings, name)
        running = devserver.is_running(settings, name)
        log = settings.logs / f"{name}.log"
        state = f"running (pid {pid}, log {log})" if running else "not running"
        out.print(f"background {name}: {state}")
    answers = asyncio.run(_answers(target))
    out.print(f"Temporal at {target.address}: {'answers' if answers else 'does not answer'}")
    return ExitCode.COMPLETED


async def _answers(target: Target) -> bool:
    try:
        await connect(target, timeout_s=3)
    except Exception:
        return False
    return True


def worker() -> int:
    asyncio.run(serve(Settings.from_env()))
    return ExitCode.COMPLETED
