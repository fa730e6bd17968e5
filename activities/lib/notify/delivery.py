"""One POST to a webhook, retried inside the activity while the receiver may yet answer.

Retried: a 5xx, 408 (request timeout), 425 and 429 (rate limited: the receiver asks to be
tried later), a timeout, a connection that could not be made. Not retried: any other answer,
a redirect included (a signed body is not re-sent to wherever a 3xx points). Bounded by a
deadline, so a dead receiver costs the activity seconds, never its whole time limit: the run
never waits on it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

#: Attempts per webhook, and the pause before the second and the third.
ATTEMPTS = 3
BACKOFF_S: tuple[float, ...] = (1.0, 3.0)
_RETRY_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Post:
    url: str
    body: bytes
    headers: dict[str, str]
    timeout_s: float


async def deliver(client: httpx.AsyncClient, post: Post, deadline: float) -> str | None:
    """None when the webhook accepted the body (a 2xx), else why not, in a few words.
    ``deadline``: the event loop's clock (``loop.time()``) after which no attempt starts."""
    loop = asyncio.get_running_loop()
    why, tried = "not attempted: no time left", 0
    while tried < ATTEMPTS:
        left = deadline - loop.time()
        if left <= 0:
            break
        timeout = min(post.timeout_s, left)
        tried += 1
        try:
            # Streamed and closed unread: only the status matters, whatever the body's size.
            async with client.stream(
                "POST", post.url, content=post.body, headers=post.headers, timeout=timeout
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            why = f"no answer within {round(timeout, 1):g}s"
        except httpx.TransportError as exc:
            why = f"could not connect ({_reason(exc, post.url)})"
        else:
            if 200 <= status < 300:
                return None
            why = f"HTTP {status}"
            if 300 <= status < 400:
                return f"{why} (redirects are not followed)"
            if not retryable(status):
                return why
        pause = BACKOFF_S[min(tried, len(BACKOFF_S)) - 1]
        if tried == ATTEMPTS or loop.time() + pause >= deadline:
            break
        await asyncio.sleep(pause)
    return f"{why} (after {tried} attempt{'' if tried == 1 else 's'})" if tried else why


def retryable(status: int) -> bool:
    return status >= 500 or status in _RETRY_STATUS


def _reason(exc: Exception, url: str) -> str:
    # httpx's messages name the errno, not the URL; removed all the same, should one do.
    text = str(exc).replace(url, "<url>").strip() or type(exc).__name__
    return " ".join(text.split())[:200]
