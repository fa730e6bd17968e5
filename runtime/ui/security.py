"""Who may use the dashboard, and what a page may be made to do.

- **Loopback by default.** Bound to a loopback address, the dashboard answers only requests
  whose Host is a loopback name (a web page elsewhere cannot reach it by DNS rebinding).
  Any other address needs a token (``UET_UI_TOKEN``): ``uet ui`` refuses to start without one.
- **The token** is checked on every request when set: ``Authorization: Bearer …``, or the
  HttpOnly cookie that ``?token=…`` sets once (then the token leaves the address bar).
- **Forms** carry a per-session CSRF token (a cookie and a hidden field, compared on POST),
  and a POST from another origin (``Origin``, or failing that ``Referer``,
  ``Sec-Fetch-Site``) is refused before anything reads it.
- Every response says: no framing, no sniffing, no referrer to other sites, scripts only
  from here.
"""

from __future__ import annotations

import hmac
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

TOKEN_COOKIE = "uet_ui_token"
CSRF_COOKIE = "uet_csrf"
CSRF_FIELD = "csrf"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class Forbidden(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def host_name(host_header: str) -> str:
    """``127.0.0.1:8300`` → ``127.0.0.1``; ``[::1]:8300`` → ``[::1]``."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """ASGI middleware: host, token and origin checks; the CSRF cookie; security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback_only: bool) -> None:
        self.app = app
        self.token = token
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cookies = _cookies(headers)
        host = headers.get("host", "")
        refusal = self._refusal(scope, headers, cookies, host)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        csrf = cookies.get(CSRF_COOKIE) or ""
        fresh = not csrf
        if fresh:
            csrf = new_token()
        scope.setdefault("state", {})["csrf"] = csrf

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", []))
                present = {k.lower() for k, _ in raw}
                for name, value in HEADERS.items():
                    if name.lower().encode() not in present:
                        raw.append((name.encode(), value.encode()))
                if fresh:
                    raw.append((b"set-cookie", _cookie(CSRF_COOKIE, csrf).encode()))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(
        self, scope: Scope, headers: Headers, cookies: dict[str, str], host: str
    ) -> Response | None:
        if self.loopback_only and host_name(host) not in LOOPBACK_NAMES:
            return PlainTextResponse(
                "uet ui answers loopback names only (start it with --host and UET_UI_TOKEN "
                "to serve others)",
                status_code=421,
            )
        if self.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in query and same(query["token"], self.token):
                # Once: the cookie carries it from now on, and the address bar forgets it.
                rest = urlencode([(k, v) for k, v in query.items() if k != "token"])
                target = scope["path"] + (f"?{rest}" if rest else "")
                response = RedirectResponse(target, status_code=303)
                response.headers.append("set-cookie", _cookie(TOKEN_COOKIE, self.token))
                return response
            bearer = headers.get("authorization", "")
            given = (
                bearer[7:] if bearer.lower().startswith("bearer ") else cookies.get(TOKEN_COOKIE)
            )
            if not same(given, self.token):
                return PlainTextResponse(
                    "a token is needed: open the address uet ui printed (…?token=…), or send "
                    "Authorization: Bearer $UET_UI_TOKEN",
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        if scope["method"] not in SAFE_METHODS:
            try:
                check_origin(headers, scope.get("scheme", "http"))
            except Forbidden as refused:
                return PlainTextResponse(refused.reason, status_code=403)
        return None


def check_origin(headers: Headers, scheme: str) -> None:
    """A state-changing request must come from a page of this server."""
    here = f"{scheme}://{headers.get('host', '')}"
    origin = headers.get("origin")
    if origin is not None and origin != "null":
        if origin != here:
            raise Forbidden(f"refused: a request from {origin} may not change anything here")
        return
    if origin == "null":
        raise Forbidden("refused: a request from an opaque origin may not change anything here")
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        raise Forbidden(f"refused: a {site} request may not change anything here")
    referer = headers.get("referer")
    if referer:
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" != here:
            raise Forbidden("refused: a request from another site may not change anything here")


async def read_form(request: Request) -> dict[str, str]:
    """A POSTed form (urlencoded), after its CSRF token matched the session's cookie."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise Forbidden("refused: a form must be sent as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > 1_000_000:
        raise Forbidden("refused: the form is too large")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    if not same(form.get(CSRF_FIELD), request.cookies.get(CSRF_COOKIE)):
        raise Forbidden(
            "refused: the form's CSRF token does not match this session (reload the page and "
            "try again)"
        )
    return form


def csrf_token(request: Request) -> str:
    token: str = request.scope.get("state", {}).get("csrf", "")
    return token


def _cookies(headers: Headers) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    for header in headers.getlist("cookie"):
        try:
            jar.load(header)
        except Exception:  # a malformed cookie header is no cookie
            continue
    return {name: morsel.value for name, morsel in jar.items()}


def _cookie(name: str, value: str) -> str:
    return f"{name}={value}; Path=/; HttpOnly; SameSite=Strict"
