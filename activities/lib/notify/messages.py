"""What a webhook receives: the notification made safe to send, its body in each format, its
signature and its delivery id. Pure functions: the environment is passed in."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from activities.lib.redact import MASK, redact, secret_values
from activities.lib.secrets import format_secrets
from schemas.notify import DEFAULT_DASHBOARD_URL, Notification, dashboard_link, http_url_problem

#: Slack's limits (Block Kit reference): a header's text, a section's text, the fallback text.
_SLACK_HEADER = 150
_SLACK_SECTION = 3000
_TITLE = 200
_TEXT = 4000
#: What a credential is made of. detect-secrets reports only part of some (``ghp`` of a GitHub
#: token, a JWT without its signature): the whole run of these characters around it goes.
_TOKEN = r"[A-Za-z0-9_\-.+/~]*"


def prepared(
    notification: Notification, env: Mapping[str, str], also_secret: Iterable[str] = ()
) -> Notification:
    """The notification as it may leave the worker: one-line title, bounded text, secrets
    masked (the worker's secret-named variables, well-known credential formats and
    ``also_secret``, e.g. the webhooks' signing secrets), and its dashboard link."""
    secrets = sorted({*secret_values(env), *(s for s in also_secret if s)}, key=len, reverse=True)
    review = notification.review
    if review is not None:
        review = review.model_copy(update={"summary": mask(review.summary, secrets)[:_TEXT]})
    return notification.model_copy(
        update={
            "title": one_line(mask(notification.title, secrets))[:_TITLE],
            "text": mask(notification.text, secrets)[:_TEXT],
            "review": review,
            "link": notification.link or dashboard_link(dashboard_url(env), notification),
        }
    )


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with the given secret values and any well-known credential masked."""
    text = redact(text, secrets)
    for _, value in format_secrets(text):
        text = re.sub(f"{_TOKEN}{re.escape(value)}{_TOKEN}=*", MASK, text)
    return text


def one_line(text: str) -> str:
    return " ".join(text.split())


def dashboard_url(env: Mapping[str, str]) -> str:
    """The dashboard's root URL: the worker's UET_DASHBOARD_URL (the workflow cannot read the
    environment, so the activity fills the link in), else uet ui's default address."""
    given = env.get("UET_DASHBOARD_URL", "").strip()
    return given if given and http_url_problem(given) is None else DEFAULT_DASHBOARD_URL


def delivery_id(notification: Notification) -> str:
    """The same for every attempt (and every activity retry) to send the same notification,
    so a receiver can drop duplicates: run, event and what it is about — never the time."""
    review_id = notification.review.review_id if notification.review else ""
    key = "\0".join(
        (notification.run_id, notification.event, notification.workstream_id or "", review_id)
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def signature(secret: str, body: bytes) -> str:
    """``X-Uet-Signature``: HMAC-SHA256 of the exact body bytes, as ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def json_body(notification: Notification) -> bytes:
    """The generic body: the Notification itself (schemas/notification.v1.json)."""
    return notification.model_dump_json().encode()


def slack_body(notification: Notification) -> bytes:
    """A Slack incoming-webhook message: ``text`` (what notifications and clients without
    Block Kit show, e.g. Mattermost's Slack-compatible webhooks) and ``blocks``."""
    n = notification
    link = n.link or ""
    facts = [f"*{n.status}*", f"phase `{_escape(n.phase_id)}`", f"run `{n.run_id}`"]
    if n.workstream_id:
        facts.append(f"workstream `{_escape(n.workstream_id)}`")
    if n.cost_usd_total or n.budget_usd:
        budget = f" of ${n.budget_usd:.2f}" if n.budget_usd else ""
        facts.append(f"${n.cost_usd_total:.2f}{budget} spent")
    details = n.text
    if n.review is not None and n.review.summary and n.review.summary not in details:
        details = f"{details}\n{n.review.summary}".strip()
    button = "Review" if n.event == "review_requested" else "Open run"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(n.title, _SLACK_HEADER)}}
    ]
    if details:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _section(details, link)}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(facts)}]})
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": button},
                        "url": link,
                        "action_id": "uet-open",
                    }
                ],
            }
        )
    fallback = _escape(n.title) + (f" — <{link}|{button.lower()}>" if link else "")
    return json.dumps({"text": fallback, "blocks": blocks}).encode()


def _section(details: str, link: str) -> str:
    # The link again as mrkdwn: a link button shows a warning in a workspace whose app has no
    # interactivity URL, and some clients drop the actions block.
    tail = f"\n<{link}|Open in the uet dashboard>" if link else ""
    return _cut(_escape(details), _SLACK_SECTION - len(tail)) + tail


def _escape(text: str) -> str:
    """Slack reads ``&``, ``<`` and ``>`` as markup (``<!channel>`` pings everyone)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_webhook_url(url: str) -> str:
    """What a log line may say of a webhook: its scheme, host and port. The path and query
    are left out as well as any password: a Slack or Discord webhook's path is its secret."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    if not parts.hostname:
        return "<invalid URL>"
    rest = "/…" if parts.path.strip("/") or parts.query else ""
    return f"{parts.scheme}://{parts.hostname}{port}{rest}"
