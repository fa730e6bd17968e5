"""The HTTP plumbing every forge client shares: one :class:`ApiClient` over ``httpx``.

What it does for a client: the base URL and the auth header (the token is sent, never shown:
it is redacted from every :class:`ForgeError` and never logged), JSON in and out, all pages of
a list (``Link: rel="next"`` as GitHub and Gitea send it, ``X-Next-Page`` as GitLab does),
bounded retries of what may succeed later (5xx, 429, secondary rate limits, a connection that
failed), and one line per failure a person can act on.

The retries stay short (``attempts`` tries, at most ``max_wait_s`` asleep in all): a longer
wait is the activity's retry policy's business, so the error carries ``retry_after_s``
instead. A POST is retried only when the forge cannot have acted on it (a rate limit, a
connection never made) unless the caller says it is idempotent: a 502 after GitHub created a
pull request must not become a second one; the activity's retry finds the first instead.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import httpx

from activities.lib.forges.base import ForgeError

Sleep = Callable[[float], Awaitable[None]]
Params = Mapping[str, str | int]

#: Statuses worth another try: rate limited, or the forge's own trouble.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: GitHub's advice when a secondary limit names no Retry-After: wait at least a minute.
_SECONDARY_DEFAULT_S = 60.0


class ApiClient:
    """JSON over HTTP to one forge's API.

    ``forge``: the name in messages (``GitHub``); ``token_env``: where the person keeps the
    token (``GITHUB_TOKEN``), named in the 401 and 404 hints; ``auth_header``/``auth_scheme``:
    how the token travels (``Authorization: Bearer …``, GitLab's ``PRIVATE-TOKEN: …`` with
    ``auth_scheme=None``, Gitea's ``Authorization: token …``). ``sleep`` and ``clock`` are
    injectable so tests need not wait.
    """

    def __init__(
        self,
        base_url: str,
        *,
        forge: str,
        token: str,
        token_env: str,
        auth_header: str = "Authorization",
        auth_scheme: str | None = "Bearer",
        headers: Mapping[str, str] | None = None,
        timeout_s: float = 30.0,
        attempts: int = 3,
        max_wait_s: float = 25.0,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.forge = forge
        self.token_env = token_env
        self.attempts = max(1, attempts)
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._clock = clock
        self._token = token
        all_headers = {"User-Agent": "uet", **(headers or {})}
        if token:
            all_headers[auth_header] = f"{auth_scheme} {token}" if auth_scheme else token
        self._origin = httpx.URL(base_url.rstrip("/") + "/")
        self._http = httpx.AsyncClient(
            base_url=self._origin,
            headers=all_headers,
            timeout=timeout_s,
            follow_redirects=False,  # a redirect elsewhere must not carry the token there
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def redact(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    def _redact_all(self, value: object) -> object:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, list):
            return [self._redact_all(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact_all(v) for k, v in value.items()}
        return value

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: object = None,
        what: str | None = None,
        idempotent: bool | None = None,
    ) -> httpx.Response:
        """The 2xx answer, after the retries the failure allows; else :class:`ForgeError`.
        ``path``: relative to the base URL, or an absolute URL on the same origin (a next
        page). ``what``: what the call is for, in messages (default ``METHOD path``)."""
        method = method.upper()
        what = what or f"{method} {_path_of(path)}"
        if idempotent is None:
            idempotent = method in _IDEMPOTENT
        url = self._same_origin(path, what)
        waited = 0.0
        error: ForgeError | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self._http.request(method, url, params=params, json=json)
            except httpx.TransportError as exc:
                # A connection never made reached nothing: safe to repeat whatever the method.
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                error = self._transport_error(exc, what, attempt)
                may_retry = idempotent or never_sent
            else:
                if response.status_code < 300:
                    return response
                error = self._status_error(response, what, attempt)
                may_retry = idempotent or _not_processed(response)
            if not (error.retryable and may_retry) or attempt == self.attempts:
                break
            pause = error.retry_after_s or 0.0
            if waited + pause > self.max_wait_s:
                break  # longer than this call may sleep: the activity's retry waits instead
            await self._sleep(pause)
            waited += pause
        assert error is not None
        if attempt > 1:
            error.message += f" (after {attempt} attempts)"
        raise error

    async def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Params | None = None,
        json: object = None,
        what: str | None = None,
        idempotent: bool | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The answer's JSON (None for an empty body; None for a 404 when ``missing_ok``)."""
        try:
            response = await self.request(
                method, path, params=params, json=json, what=what, idempotent=idempotent
            )
        except ForgeError as exc:
            if missing_ok and exc.status == 404:
                return None
            raise
        return self._json(response, what or f"{method.upper()} {_path_of(path)}")

    async def paginate(
        self,
        path: str,
        *,
        params: Params | None = None,
        what: str | None = None,
        max_pages: int = 1000,
    ) -> list[Any]:
        """Every item of a list endpoint, page after page, following ``Link: rel="next"`` or
        ``X-Next-Page``; ``max_pages`` bounds a forge that would never stop."""
        what = what or f"GET {_path_of(path)}"
        items: list[Any] = []
        url: str = path
        page_params: dict[str, str | int] | None = dict(params or {})
        for _ in range(max_pages):
            response = await self.request("GET", url, params=page_params, what=what)
            body = self._json(response, what)
            if not isinstance(body, list):
                raise ForgeError(
                    f"{self.forge}: {what}: expected a list, got {type(body).__name__}",
                    status=response.status_code,
                )
            items.extend(body)
            following = response.links.get("next", {}).get("url")
            if following:
                url, page_params = following, None  # the link carries every parameter
                continue
            next_page = response.headers.get("x-next-page", "").strip()
            if next_page:
                page_params = {**(params or {}), "page": next_page}
                url = path
                continue
            return items
        raise ForgeError(f"{self.forge}: {what}: more than {max_pages} pages; stopped")

    # -- internals -------------------------------------------------------------------------

    def _same_origin(self, path: str, what: str) -> str:
        if not path.startswith(("http://", "https://")):
            return path.lstrip("/")  # relative to the base URL, its path prefix kept
        target = httpx.URL(path)
        if (target.scheme, target.host, target.port) != (
            self._origin.scheme,
            self._origin.host,
            self._origin.port,
        ):
            # A next-page link to another host would get the token: refused.
            raise ForgeError(f"{self.forge}: {what}: refusing to follow a link to {target.host}")
        return path

    def _json(self, response: httpx.Response, what: str) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ForgeError(
                f"{self.forge}: {what}: the answer ({response.status_code}) is not JSON",
                status=response.status_code,
            ) from None

    def _transport_error(self, exc: httpx.TransportError, what: str, attempt: int) -> ForgeError:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        host = self._origin.host
        return ForgeError(
            self.redact(f"{self.forge}: {what}: could not reach {host} ({reason})"),
            retry_after_s=_backoff(attempt),
            details={"error": type(exc).__name__},
        )

    def _status_error(self, response: httpx.Response, what: str, attempt: int) -> ForgeError:
        status = response.status_code
        said, errors, body = _forge_message(response)
        # GitLab's messages start with the status ("401 Unauthorized"): said once, not twice.
        said = said.removeprefix(f"{status} ") if said else said
        details: dict[str, object] = {"method": response.request.method, "path": what}
        if said:
            details["message"] = said
        if errors:
            details["errors"] = errors
        if isinstance(body, dict) and isinstance(body.get("documentation_url"), str):
            details["documentation_url"] = body["documentation_url"]
        head = f"{self.forge}: {what}: {status}"
        said_part = f" {said}" if said else f" {response.reason_phrase}".rstrip()
        retry_after: float | None = None
        limit = self._rate_limit(response, said)
        if limit is not None:
            retry_after, text, info = limit
            details["rate_limit"] = info
            message = f"{head} {text}"
        elif status == 401:
            message = (
                f"{head}{said_part}: the token is invalid or expired; "
                f"check the token in ${self.token_env}"
            )
        elif status == 403:
            message = (
                f"{head}{said_part}: the token lacks the permission this needs "
                f"(or the repository forbids it)"
            )
        elif status == 404:
            message = (
                f"{head}{said_part}: the repository or object does not exist, "
                f"or the token in ${self.token_env} cannot see it"
            )
        elif status in (400, 409, 422):
            message = f"{head}{said_part}" + (f": {'; '.join(errors)}" if errors else "")
        elif 300 <= status < 400:
            where = response.headers.get("location", "?")
            message = f"{head}: moved to {where}; update the repository's address"
        elif status in _RETRY_STATUS:
            retry_after = _retry_after(response, self._clock()) or _backoff(attempt)
            kind = "server error" if status >= 500 else "try again later"
            message = f"{head}{said_part} ({kind}); retry in {retry_after:g} s"
        else:
            message = f"{head}{said_part}"
        details = {k: self._redact_all(v) for k, v in details.items()}
        return ForgeError(
            self.redact(message), status=status, retry_after_s=retry_after, details=details
        )

    def _rate_limit(
        self, response: httpx.Response, said: str
    ) -> tuple[float, str, dict[str, object]] | None:
        """(seconds to wait, what to say, the headers' numbers) for a rate-limited answer:
        a primary limit (403 or 429 with no requests remaining: wait for the reset), or a
        secondary one (Retry-After, or GitHub's "secondary rate limit" message)."""
        status = response.status_code
        if status not in (403, 429):
            return None
        headers = response.headers
        now = self._clock()
        remaining = _header(headers, "remaining")
        reset = _number(_header(headers, "reset"))
        limit = _header(headers, "limit")
        resource = _header(headers, "resource")
        info: dict[str, object] = {
            k: v
            for k, v in {
                "limit": limit,
                "remaining": remaining,
                "reset": reset,
                "used": _header(headers, "used"),
                "resource": resource,
            }.items()
            if v is not None
        }
        retry_after = _retry_after(response, now)
        scope = ", ".join(x for x in (f"limit {limit}" if limit else "", resource or "") if x)
        scope = f" ({scope})" if scope else ""
        if remaining is not None and remaining.strip() == "0":
            wait = max(0.0, reset - now) if reset is not None else (retry_after or 60.0)
            if retry_after is not None:
                wait = max(wait, retry_after)
            wait = float(round(wait))
            when = time.strftime("%H:%M:%S", time.localtime(now + wait))
            return (
                wait,
                f"rate limit exceeded{scope}: resets at {when} local time, in {wait:g} s",
                info,
            )
        if retry_after is not None or "secondary rate limit" in said.lower() or status == 429:
            wait = float(round(retry_after if retry_after is not None else _SECONDARY_DEFAULT_S))
            kind = (
                "secondary rate limit" if status == 403 or "secondary" in said else "rate limited"
            )
            return wait, f"{kind}{scope}: retry in {wait:g} s", info
        return None


def _not_processed(response: httpx.Response) -> bool:
    """The forge refused before acting (rate limited), so even a POST may be repeated."""
    return response.status_code in (403, 429) and (
        "retry-after" in response.headers or _header(response.headers, "remaining") == "0"
    )


def _forge_message(response: httpx.Response) -> tuple[str, list[str], object]:
    """The forge's own words: GitHub/Gitea ``{"message", "errors"}``, GitLab ``{"message"}``
    (a string, a list, or a field → list dict) or ``{"error", "error_description"}``."""
    try:
        body: object = response.json()
    except ValueError:
        return "", [], None
    if not isinstance(body, dict):
        return "", [], body
    said = ""
    message = body.get("message")
    errors: list[str] = []
    if isinstance(message, str):
        said = message
    elif isinstance(message, list):
        errors.extend(str(m) for m in message)
    elif isinstance(message, dict):
        for key, value in message.items():
            texts = value if isinstance(value, list) else [value]
            errors.extend(f"{key} {t}" for t in texts)
    if not said:
        error = body.get("error")
        said = error if isinstance(error, str) else ""
        description = body.get("error_description")
        if isinstance(description, str):
            said = f"{said}: {description}" if said else description
    raw = body.get("errors")
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, str):
            errors.append(item)
        elif isinstance(item, dict):
            # GitHub: a "message" for custom errors, else resource/field/code.
            text = item.get("message") or " ".join(
                str(item[k]) for k in ("resource", "field", "code") if item.get(k)
            )
            if text:
                errors.append(str(text))
    return " ".join(said.split()), errors, body


def _header(headers: httpx.Headers, name: str) -> str | None:
    # GitHub: x-ratelimit-*; GitLab: RateLimit-* (both spellings accepted for either).
    return headers.get(f"x-ratelimit-{name}") or headers.get(f"ratelimit-{name}")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _retry_after(response: httpx.Response, now: float) -> float | None:
    """Retry-After in seconds (either of its forms: seconds, or an HTTP date)."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value.strip())
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _backoff(attempt: int) -> float:
    return float(min(8, 2 ** (attempt - 1)))  # 1, 2, 4, 8 s


def _path_of(path: str) -> str:
    if path.startswith(("http://", "https://")):
        return httpx.URL(path).path
    return "/" + path.lstrip("/")
