"""Telling people about a run: one notification POSTed to each webhook that asked for its event.

A notification is a courtesy, never a step of the run: this activity returns what it could
not deliver instead of raising, so no webhook can fail, block or slow a phase. It retries a
receiver that may yet answer itself (activities/lib/notify/delivery.py), within a deadline
well inside its start-to-close limit; Temporal's own retries are left for a lost worker, and
the delivery id lets a receiver drop what such a retry sends twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import timedelta
from functools import cache
from importlib import metadata

import httpx
from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.notify.delivery import Post, deliver
from activities.lib.notify.messages import (
    delivery_id,
    json_body,
    prepared,
    redact_webhook_url,
    signature,
    slack_body,
)
from activities.lib.state_dir import StateDir
from schemas.notify import Notification, NotifyInput, NotifyResult, WebhookSpec, http_url_problem

log = logging.getLogger("uet.notify")

#: The longest one notification may take, all webhooks together (they are sent at once):
#: well under the two minutes the workflows give the activity.
DEADLINE_S = 60.0


class NotifyActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def notify(self, input: NotifyInput) -> NotifyResult:
        """Send ``input.notification`` to each of ``input.spec.webhooks`` that wants its event."""
        try:
            return await send(input, os.environ, _deadline_s())
        except Exception as exc:  # a bug here must not fail the run either
            line = f"notification {input.notification.event} not sent: {type(exc).__name__}"
            log.warning("%s (run %s)", line, input.notification.run_id, exc_info=True)
            return NotifyResult(failed=[line])


async def send(input: NotifyInput, env: Mapping[str, str], within_s: float) -> NotifyResult:
    """Deliver to every subscribed webhook at once; each failure is one line, logged."""
    event = input.notification.event
    hooks = [hook for hook in input.spec.webhooks if event in hook.events]
    if not hooks:
        return NotifyResult()
    # Signing secrets are masked too, whatever their variables are called.
    secrets = [env.get(hook.secret_env, "") for hook in hooks if hook.secret_env]
    notification = prepared(input.notification, env, secrets)
    deadline = asyncio.get_running_loop().time() + within_s
    # No redirects: a signed body goes where the spec says, nowhere a 3xx points.
    async with httpx.AsyncClient(follow_redirects=False) as client:
        outcomes = await asyncio.gather(
            *(_one(client, hook, notification, env, deadline) for hook in hooks)
        )
    failed = [line for line in outcomes if line is not None]
    for line in failed:
        log.warning("notification %s of run %s not delivered: %s", event, notification.run_id, line)
    return NotifyResult(delivered=len(hooks) - len(failed), failed=failed)


async def _one(
    client: httpx.AsyncClient,
    hook: WebhookSpec,
    notification: Notification,
    env: Mapping[str, str],
    deadline: float,
) -> str | None:
    """None when delivered, else the failed line (the URL redacted)."""
    url = hook.url or env.get(hook.url_env or "", "").strip()
    where = redact_webhook_url(url) if url else f"${hook.url_env}"
    if not url:
        return f"{where}: {hook.url_env} is not set in the worker's environment"
    if http_url_problem(url):
        # Only from url_env (the spec's url is checked when the phase is validated): the
        # message would quote the URL, so it is not repeated here.
        return f"{where}: ${hook.url_env} is not an http or https URL"
    body = slack_body(notification) if hook.format == "slack" else json_body(notification)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"uet/{_version()}",
        "X-Uet-Event": notification.event,
        "X-Uet-Delivery": delivery_id(notification),
    }
    if hook.secret_env:
        secret = env.get(hook.secret_env, "")
        if not secret:
            # Never unsigned: a receiver that checks signatures would drop it, one that does
            # not was promised it could.
            return f"{where}: {hook.secret_env} is not set in the worker's environment; not sent"
        headers["X-Uet-Signature"] = signature(secret, body)
    try:
        why = await deliver(client, Post(url, body, headers, hook.timeout_s), deadline)
    except Exception as exc:  # whatever httpx raises besides its transport errors: this one
        why = f"not sent ({type(exc).__name__})"  # webhook's line, the others still go
    return None if why is None else f"{where}: {why}"


def _deadline_s() -> float:
    """DEADLINE_S, or less when the activity's own limit is shorter (it must return in time)."""
    limit: timedelta | None = (
        activity.info().start_to_close_timeout if activity.in_activity() else None
    )
    if not limit:
        return DEADLINE_S
    return max(1.0, min(DEADLINE_S, limit.total_seconds() - 5))


@cache
def _version() -> str:
    try:
        return metadata.version("uet")
    except metadata.PackageNotFoundError:
        return "0"
