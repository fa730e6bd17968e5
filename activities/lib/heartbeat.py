"""Heartbeats for every activity, however short.

An activity lost with its worker is retried only when Temporal notices: without a heartbeat
timeout that is its whole start-to-close limit (minutes). With one, a dead worker's git step
moves to another worker within seconds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from temporalio import activity

P = ParamSpec("P")
R = TypeVar("R")


def heartbeating(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Heartbeat (every third of the heartbeat timeout) for as long as ``fn`` runs."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
        if not timeout:
            return await fn(*args, **kwargs)
        every = max(0.2, timeout.total_seconds() / 3)

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(every)

        task = asyncio.create_task(beat())
        try:
            return await fn(*args, **kwargs)
        finally:
            task.cancel()

    return wrapper
