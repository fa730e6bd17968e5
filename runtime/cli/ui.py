"""`uet ui` (the dashboard, in a browser) and `uet report` (one run as one HTML file)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from runtime import connect
from runtime.cli.base import command, run_id
from runtime.errors import ExitCode, UserError
from runtime.output import err, out
from runtime.settings import Settings, is_loopback

DEFAULT_PORT = 8300


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "ui",
        ui,
        "the dashboard: runs, each run's DAG and timeline, the review inbox, insights — live",
        [
            "uet ui",
            "uet ui --port 8400",
            "UET_UI_TOKEN=$(openssl rand -hex 24) uet ui --host 0.0.0.0",
        ],
    )
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other needs UET_UI_TOKEN)",
    )
    s.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    s = command(
        sub,
        "report",
        report,
        "one run as a self-contained HTML file: DAG, timeline, workstreams, gates, costs",
        ["uet report 01JABC… --html run.html"],
    )
    run_id(s)
    s.add_argument("--html", required=True, metavar="FILE", help="the file to write")


def loopback(host: str) -> bool:
    return is_loopback(f"[{host}]:0" if ":" in host else f"{host}:0")


async def ui(host: str, port: int) -> int:
    from runtime.ui.app import create_app
    from runtime.ui.data import Dashboard
    from runtime.ui.serve import listen, server

    token = os.environ.get("UET_UI_TOKEN") or None
    local = loopback(host)
    if not local and not token:
        raise UserError(
            f"uet ui --host {host} would serve other machines: set UET_UI_TOKEN to a secret "
            "(e.g. `export UET_UI_TOKEN=$(openssl rand -hex 24)`) and start it again"
        )
    listener = listen(host, port)
    client = await connect.client()
    app = create_app(Dashboard(client, Settings.from_env()), token=token, loopback_only=local)
    shown = f"[{host}]" if ":" in host else host
    where = f"http://{shown}:{listener.getsockname()[1]}/"
    err.print(f"uet ui: {where}" + ("?token=$UET_UI_TOKEN" if token else ""), markup=False)
    err.print("  (Ctrl-C stops it)")
    await server(app).serve(sockets=[listener])
    return ExitCode.COMPLETED


async def report(run_id: str, html: str) -> int:
    from runtime.ui.data import Dashboard
    from runtime.ui.report import report_html

    dashboard = Dashboard(await connect.client(), Settings.from_env())
    try:
        snapshot = await dashboard.watch(run_id).current()
    finally:
        await dashboard.close()
    text = report_html(snapshot)
    try:
        Path(html).write_text(text, "utf-8")
    except OSError as exc:
        raise UserError(f"{html}: cannot write the report ({exc.strerror or exc})") from None
    out.print(
        f"wrote {html} ({len(text.encode()):,} bytes): run {run_id}, "
        f"{len(snapshot.record.workstreams)} workstreams, {snapshot.record.status}",
        markup=False,
    )
    return ExitCode.COMPLETED
