"""Notifications (contract): where a phase tells people what happened, and what it tells them.

``notify:`` in a phase file names webhooks; the phase workflow builds a :class:`Notification`
when a review is requested, the budget warning fires and the run ends, and the ``notify``
activity (activities/notify.py) posts it to each webhook that asked for that event — as the
generic JSON body (``schemas/notification.v1.json``) or as a Slack incoming-webhook message.

Nothing secret lives here: a webhook names the worker's environment variables that hold its
signing secret (``secret_env``) and, for URLs that are secrets themselves such as Slack's,
its URL (``url_env``). The spec travels in the run's input, so a value in it is as public as
the Temporal history.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from schemas.base import Model
from schemas.review import ReviewReason

NotifyEvent = Literal["review_requested", "run_completed", "run_failed", "budget_warning"]
ALL_EVENTS: tuple[NotifyEvent, ...] = (
    "review_requested",
    "run_completed",
    "run_failed",
    "budget_warning",
)
#: The phase's state, as ``schemas.run.PhaseState`` spells it (that module imports the spec,
#: which imports this one; tests/test_notify.py checks the two lists agree).
PhaseStatus = Literal[
    "running", "awaiting_review", "completed", "failed", "rolled_back", "canceled"
]

#: Where the dashboard (``uet ui``) listens unless the worker's ``UET_DASHBOARD_URL`` says.
DEFAULT_DASHBOARD_URL = "http://127.0.0.1:8300"
#: The longest a webhook's receiver may take to answer one attempt: with three attempts and
#: their backoff, a notification stays well inside the activity's two-minute limit.
MAX_TIMEOUT_S = 30.0

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def http_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a webhook's address, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"{url!r} is not a URL"
    if parts.scheme not in ("http", "https"):
        return f"{url!r} is not an http or https URL"
    if not parts.hostname:
        return f"{url!r} has no host"
    return None


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        # PydanticCustomError: `uet validate` prints its message as it is ("Value error, …" not).
        raise PydanticCustomError(
            "env_name",
            "{value} is not an environment variable name (the NAME of a worker variable, "
            "never its value)",
            {"value": repr(value)},
        )
    return value


class WebhookSpec(Model):
    """An HTTP endpoint that receives notifications as a POST with a JSON body."""

    url: str | None = Field(
        default=None,
        description="http or https URL the notification is POSTed to (or give url_env)",
    )
    url_env: str | None = Field(
        default=None,
        description="the NAME of a worker environment variable holding the URL, for URLs that "
        "are secrets themselves (Slack's incoming webhooks)",
    )
    events: list[NotifyEvent] = Field(
        default_factory=lambda: list(ALL_EVENTS),
        min_length=1,
        description="what this webhook is told about (default: every event)",
    )
    format: Literal["json", "slack"] = Field(
        default="json",
        description="json: the Notification itself (schemas/notification.v1.json); slack: a "
        "Slack incoming-webhook message (Mattermost and Rocket.Chat take it too)",
    )
    secret_env: str | None = Field(
        default=None,
        description="the NAME of a worker environment variable holding the HMAC secret: each "
        "body is signed (X-Uet-Signature: sha256=<hex>); unset on the worker: not sent",
    )
    timeout_s: float = Field(
        default=10, gt=0, le=MAX_TIMEOUT_S, description="for each attempt to deliver"
    )

    @field_validator("url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        problem = None if value is None else http_url_problem(value)
        if problem:
            raise PydanticCustomError("webhook_url", problem)
        return value

    @field_validator("url_env", "secret_env")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        return _env_name(value)

    @model_validator(mode="after")
    def _one_address(self) -> WebhookSpec:
        if (self.url is None) == (self.url_env is None):
            raise PydanticCustomError("webhook_address", "give exactly one of url or url_env")
        return self


class NotifySpec(Model):
    """Who is told what about a run (``notify:`` in a phase file)."""

    webhooks: list[WebhookSpec] = Field(
        default_factory=list, description="HTTP endpoints notified of the run's events"
    )


class NotificationReview(Model):
    """The review a ``review_requested`` notification is about."""

    review_id: str = Field(description="the review's ULID (uet review … takes it)")
    reason: ReviewReason = Field(description="why a person is asked")
    summary: str = Field(default="", description="what the reviewer is asked about (masked)")


class Notification(Model):
    """What a webhook receives (format json): one event of one run. Contract:
    ``schemas/notification.v1.json``."""

    version: Literal[1] = Field(default=1, description="the version of this document's format")
    event: NotifyEvent = Field(description="what happened")
    run_id: str = Field(description="the run's ULID")
    phase_id: str = Field(description="the phase file's phase_id")
    workflow_id: str = Field(description="the phase workflow's Temporal id (uet-<run_id>)")
    at: datetime = Field(description="when it happened (workflow time, ISO 8601)")
    title: str = Field(description="one line, e.g. 'PH-DEMO: review requested for ws-api'")
    text: str = Field(
        default="", description="a few lines of detail; secret values are masked before sending"
    )
    link: str | None = Field(
        default=None,
        description="the dashboard page for this event: <dashboard>/reviews for "
        "review_requested, else <dashboard>/runs/<run_id>; <dashboard> is the worker's "
        "UET_DASHBOARD_URL (default http://127.0.0.1:8300). Filled in by the notify activity "
        "when the workflow leaves it empty",
    )
    status: PhaseStatus = Field(description="the phase's state when this was sent")
    workstream_id: str | None = Field(
        default=None, description="the workstream it is about, if one (a review, a budget)"
    )
    review: NotificationReview | None = Field(
        default=None, description="review_requested: the review waiting for a person"
    )
    cost_usd_total: float = Field(
        default=0, ge=0, description="what the run's tools have cost so far, in US dollars"
    )
    budget_usd: float | None = Field(
        default=None, description="the phase's total budget in US dollars, if it has one"
    )


def dashboard_link(base: str, notification: Notification) -> str:
    """The dashboard page a notification links to (``base``: the dashboard's root URL)."""
    root = base.rstrip("/")
    if notification.event == "review_requested":
        return f"{root}/reviews"
    return f"{root}/runs/{notification.run_id}"


class NotifyInput(Model):
    """The ``notify`` activity's input: the phase's notify settings and one notification."""

    spec: NotifySpec
    notification: Notification


class NotifyResult(Model):
    """What the ``notify`` activity did: it never fails for a webhook that cannot be reached."""

    delivered: int = Field(default=0, description="webhooks that accepted the notification")
    failed: list[str] = Field(
        default_factory=list,
        description="one line per webhook not reached: its URL (path and credentials left "
        "out) and why",
    )
