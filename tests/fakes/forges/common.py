"""What the fake forges (GitHub, GitLab, Gitea) share: a loopback server, JSON errors, page
slicing with ``Link`` headers, scripted faults, and the branches of a local git repository.

- :func:`serve`: runs an ASGI app (Starlette) with uvicorn on a free 127.0.0.1 port in a
  thread; a context manager yielding the base URL (``http://127.0.0.1:PORT``).
- :func:`json_error`: a JSON error response with extra headers.
- :func:`read_json`: the request's JSON body, or :data:`BAD_JSON` when it does not parse
  (each fake answers that its own way: GitHub 400 ``Problems parsing JSON``).
- :func:`page_of`: a ``page``/``per_page`` slice and its RFC 8288 ``Link`` header
  (``rel="next"``, ``"last"``, ``"first"``, ``"prev"``) the way GitHub and Gitea send them,
  plus GitLab's ``X-Page``/``X-Next-Page``/``X-Total`` headers on request.
- :class:`Faults`: a queue of scripted answers (a 502, a rate limit) the app returns before
  handling a matching request, so tests can make a forge fail N times and then recover.
- :func:`branch_exists`: whether a bare (or any) git repository has ``refs/heads/<name>``,
  so a fake opens a pull request only for a branch that was really pushed.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

#: What :func:`read_json` returns for a body that is not JSON (``None`` is valid JSON).
BAD_JSON: Any = object()


@contextlib.contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Run ``app`` on a free loopback port until the block ends; yields its base URL."""
    # IPPROTO_TCP named, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says
    # TCP, and without it each answer (headers and body written apart) waits ~40 ms on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"fake-forge-{port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake forge's server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def json_error(
    status: int, body: Mapping[str, object], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(dict(body), status_code=status, headers=dict(headers or {}))


async def read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw) if raw.strip() else BAD_JSON
    except ValueError:
        return BAD_JSON


def query_int(request: Request, name: str, default: int) -> int:
    """An integer query parameter; a missing or malformed one falls back to ``default``
    (GitHub ignores a bad ``page``/``per_page`` rather than failing)."""
    try:
        return int(request.query_params.get(name, default))
    except ValueError:
        return default


@dataclass
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def last(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    def link_header(self, request: Request) -> str:
        """RFC 8288 links to the other pages, the request's other parameters kept."""
        links = []
        rels: list[tuple[str, int]] = []
        if self.page > 1:
            rels += [("prev", self.page - 1), ("first", 1)]
        if self.page < self.last:
            rels += [("next", self.page + 1), ("last", self.last)]
        for rel, number in rels:
            query = dict(request.query_params)
            query["page"] = str(number)
            query.setdefault("per_page", str(self.per_page))
            url = request.url.replace(query=urlencode(query))
            links.append(f'<{url}>; rel="{rel}"')
        return ", ".join(links)

    def headers(self, request: Request, *, gitlab: bool = False) -> dict[str, str]:
        """``Link`` (when there are other pages); with ``gitlab``, GitLab's X-* headers too."""
        out: dict[str, str] = {}
        link = self.link_header(request)
        if link:
            out["Link"] = link
        if gitlab:
            out |= {
                "X-Page": str(self.page),
                "X-Per-Page": str(self.per_page),
                "X-Total": str(self.total),
                "X-Total-Pages": str(self.last),
                "X-Next-Page": str(self.page + 1) if self.page < self.last else "",
                "X-Prev-Page": str(self.page - 1) if self.page > 1 else "",
            }
        return out


def page_of(
    request: Request,
    items: Sequence[Any],
    *,
    default_per_page: int = 30,
    max_per_page: int = 100,
    per_page_name: str = "per_page",
) -> Page:
    """The requested page of ``items`` (1-based ``page``; ``per_page`` clamped to
    1..``max_per_page`` as GitHub does; Gitea names it ``limit``: pass ``per_page_name``)."""
    per_page = min(max(1, query_int(request, per_page_name, default_per_page)), max_per_page)
    page = max(1, query_int(request, "page", 1))
    start = (page - 1) * per_page
    return Page(list(items[start : start + per_page]), page, per_page, len(items))


@dataclass
class Fault:
    status: int
    body: Mapping[str, object]
    headers: Mapping[str, str] = field(default_factory=dict)
    times: int = 1  # how many matching requests get it (then the app answers normally)
    method: str | None = None  # None: any method
    path_prefix: str = ""  # "" : any path


class Faults:
    """Scripted failures, taken in order by the first matching request (thread-safe: the app
    runs in the server's thread, tests push from theirs)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = []

    def push(self, fault: Fault) -> None:
        with self._lock:
            self._queue.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._queue:
                if fault.method not in (None, method) or not path.startswith(fault.path_prefix):
                    continue
                fault.times -= 1
                if fault.times <= 0:
                    self._queue.remove(fault)
                return fault
        return None

    def response(self, method: str, path: str) -> Response | None:
        fault = self.take(method, path)
        return None if fault is None else json_error(fault.status, fault.body, fault.headers)


def branch_exists(git_dir: Path, branch: str) -> bool:
    """Whether ``git_dir`` (a bare repository or a work tree) has the branch ``branch``."""
    return branch_sha(git_dir, branch) is not None


def branch_sha(git_dir: Path, branch: str) -> str | None:
    done = subprocess.run(
        ["git", "-C", str(git_dir), "rev-parse", "--verify", "--quiet",
         f"refs/heads/{branch}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else None
