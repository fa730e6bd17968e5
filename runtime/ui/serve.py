"""Serving the dashboard with uvicorn on a socket of our own: ``uet ui`` runs it until Ctrl-C;
tests and benches serve it in their own event loop (beside their worker) for a while."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import ASGIApp

from runtime.errors import UserError


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound now: a port in use is one line, before anything starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as exc:
        listener.close()
        raise UserError(
            f"uet ui cannot listen on {host}:{port} ({exc.strerror or exc}); choose another "
            "--port or --host"
        ) from None
    listener.listen(128)
    return listener


def server(app: ASGIApp) -> uvicorn.Server:
    # Open event streams end at once on shutdown rather than hold it up.
    return uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    )


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """The app served in this event loop; yields its base URL."""
    listener = listen(host, port)
    running = server(app)
    task = asyncio.create_task(running.serve(sockets=[listener]))
    while not running.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://{host}:{listener.getsockname()[1]}"
    finally:
        running.should_exit = True
        await task
        listener.close()
