"""A git remote on loopback that asks for a token, as a forge does (conftest's ``git_http``).

The real ``git http-backend`` runs as a CGI behind a small stdlib HTTP server, so git speaks
its real smart-HTTP protocol to it. Every request must carry a token: HTTP Basic with any
username and the token as password (how GitHub, GitLab and Gitea take one from git), or
``Authorization: Bearer <token>``. Anything else gets a 401 with ``WWW-Authenticate: Basic``,
so a git without credentials would prompt; with ``GIT_TERMINAL_PROMPT=0`` it fails instead.

The server records every ``Authorization`` header it saw (a test checks the token was sent
and how) and, per push, which refs the push changed: read from the served repository before
and after ``git-receive-pack`` ran, so what is recorded is what landed, not what was asked.
"""

from __future__ import annotations

import base64
import binascii
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlsplit

REALM = "uet-test"


@dataclass(frozen=True)
class Push:
    """One ``git-receive-pack`` request: the served repository's refs that it changed
    (``None``: deleted)."""

    repo: str
    updated: dict[str, str | None]
    status: int


@dataclass
class GitHttpServer:
    root: Path
    port: int = 0
    tokens: set[str] = field(default_factory=set)
    #: Every ``Authorization`` header seen, in order (``None``: a request without one).
    authorizations: list[str | None] = field(default_factory=list)
    #: Every request, authorised or not: ``(method, path)``.
    requests: list[tuple[str, str]] = field(default_factory=list)
    #: Every ``git-receive-pack`` request. (A push larger than git's ``http.postBuffer`` is
    #: preceded by a small probe request, recorded with nothing updated.)
    pushes: list[Push] = field(default_factory=list)

    def serve(self, repo: Path, name: str = "project") -> str:
        """A bare clone of ``repo`` served as ``NAME.git``; its URL."""
        bare = self.root / f"{name}.git"
        _git(self.root, "clone", "-q", "--bare", str(repo), str(bare))
        # Pushes are authorised by this server, not by http-backend's REMOTE_USER rule.
        _git(bare, "config", "http.receivepack", "true")
        return self.url(name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    def refs(self, name: str) -> dict[str, str]:
        """The served repository's refs now (``refs/...`` → sha)."""
        return _refs(self.root / f"{name}.git")

    def authorised(self, header: str | None) -> str | None:
        """The user a request's ``Authorization`` header authenticates, or ``None``."""
        if not header:
            return None
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer":
            return "bearer" if credentials in self.tokens else None
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user or "anonymous") if sep and password in self.tokens else None


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=_backend_env(), check=True, capture_output=True, text=True
    ).stdout


def _refs(bare: Path) -> dict[str, str]:
    listed = _git(bare, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in listed.splitlines() if line)  # type: ignore[misc]


def _backend_env() -> dict[str, str]:
    """The server side's environment: none of the test process's GIT_* settings, and no
    user or system git config, so the remote behaves the same on every machine."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C"})
    return env


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    # HTTP/1.0 responses: the connection closes after each one, so a CGI's body can be
    # streamed as it comes, without knowing its length up front.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test's output is for the test (and a request line is no secret, but
        nothing here should ever print a header)."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def _handle(self) -> None:
        state = self.server.state
        path = urlsplit(self.path)
        state.requests.append((self.command, path.path))
        sent = self.headers.get_all("Authorization") or []
        state.authorizations.extend(sent or [None])
        # Two Authorization headers (a header from the repository's config beside the
        # caller's) would be ambiguous: refused, as a forge's proxy might.
        user = state.authorised(sent[0]) if len(sent) == 1 else None
        if user is None:
            self._drain()
            body = b"authentication required\n"
            self.send_response(401)
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        pushing = self.command == "POST" and path.path.endswith("/git-receive-pack")
        repo = unquote(path.path).lstrip("/").split("/", 1)[0]
        bare = state.root / repo
        before = _refs(bare) if pushing and bare.is_dir() else {}
        status = self._cgi(unquote(path.path), path.query, user)
        if pushing and bare.is_dir():
            after = _refs(bare)
            changed: dict[str, str | None] = {
                ref: after.get(ref)
                for ref in sorted(before.keys() | after.keys())
                if before.get(ref) != after.get(ref)
            }
            state.pushes.append(Push(repo.removesuffix(".git"), changed, status))

    def _cgi(self, path_info: str, query: str, user: str) -> int:
        """Run ``git http-backend`` for this request (the CGI contract of its manual page):
        the request body streamed to its stdin, its output streamed back."""
        env = _backend_env()
        env.update(
            {
                "GIT_PROJECT_ROOT": str(self.server.state.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path_info,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "REMOTE_USER": user,
                "REMOTE_ADDR": self.client_address[0],
                "SERVER_PROTOCOL": "HTTP/1.1",
                "GATEWAY_INTERFACE": "CGI/1.1",
            }
        )
        if self.headers.get("Content-Type"):
            env["CONTENT_TYPE"] = self.headers["Content-Type"]
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        length = self.headers.get("Content-Length")
        if length is not None and not chunked:
            env["CONTENT_LENGTH"] = length
        # git gzips large requests; http-backend inflates them itself when told so.
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["HTTP_GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        proc = subprocess.Popen(
            ["git", "http-backend"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=self.server.state.root,
        )
        assert proc.stdin is not None and proc.stdout is not None
        # The body goes in from another thread: http-backend may answer before it has read
        # all of it, and neither side must wait on a full pipe.
        feeder = threading.Thread(target=self._feed, args=(proc.stdin, chunked, length))
        feeder.start()
        try:
            status = self._relay(proc.stdout)
        finally:
            feeder.join()
            proc.stdout.close()
            proc.wait()
        return status

    def _feed(self, stdin: IO[bytes], chunked: bool, length: str | None) -> None:
        try:
            for block in self._body(chunked, length):
                stdin.write(block)
        except (BrokenPipeError, ConnectionError):
            pass
        finally:
            with suppress(BrokenPipeError):
                stdin.close()

    def _body(self, chunked: bool, length: str | None) -> Iterator[bytes]:
        """The request body as it arrives: ``Content-Length`` bytes, or git's chunked
        encoding (what it sends for a body larger than ``http.postBuffer``) decoded."""
        if chunked:
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                yield self.rfile.read(size)
                self.rfile.readline()  # the CRLF after each chunk
        remaining = int(length or 0)
        while remaining > 0:
            block = self.rfile.read(min(remaining, 65536))
            if not block:
                return
            remaining -= len(block)
            yield block

    def _drain(self) -> None:
        """Read an unauthorised request's body, so the client sees the 401 and not a reset."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        for _ in self._body(chunked, self.headers.get("Content-Length")):
            pass

    def _relay(self, stdout: IO[bytes]) -> int:
        """The CGI's headers (``Status:`` becomes the status line), then its body."""
        status, reason = 200, "OK"
        headers: list[tuple[str, str]] = []
        while True:
            line = stdout.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if name.lower() == "status":
                code, _, reason = value.strip().partition(" ")
                status = int(code)
            else:
                headers.append((name, value.strip()))
        self.send_response(status, reason or None)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        shutil.copyfileobj(stdout, self.wfile)
        return status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: GitHttpServer


@contextmanager
def running_git_http(root: Path) -> Iterator[GitHttpServer]:
    """A server on a free loopback port, serving the bare repositories under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    httpd = _Server(("127.0.0.1", 0), _Handler)
    state = GitHttpServer(root=root, port=httpd.server_address[1])
    httpd.state = state
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)
