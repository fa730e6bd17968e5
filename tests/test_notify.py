"""Notifications: a real local HTTP server receives what the notify activity sends — the
published JSON body, the Slack message, the signature, retries — and a webhook that cannot be
reached is a line in the result, never an exception."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities.lib.notify import delivery
from activities.lib.notify.messages import delivery_id, redact_webhook_url
from activities.lib.state_dir import StateDir
from activities.notify import NotifyActivities, send
from activities.registry import ACTIVITY_CLASSES, all_activities
from runtime.cli import main
from runtime.settings import Settings
from schemas.export import SCHEMA_DIR
from schemas.notify import (
    ALL_EVENTS,
    Notification,
    NotificationReview,
    NotifyEvent,
    NotifyInput,
    NotifyResult,
    NotifySpec,
    PhaseStatus,
    WebhookSpec,
)
from schemas.run import PhaseState
from schemas.spec import PhaseSpec

RUN_ID = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
SECRET = "s3cret-signing-key-for-tests"


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A webhook receiver on 127.0.0.1: records every POST and answers each path with the
    statuses scripted for it, in order (then 200)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: dict[str, list[int]] = {}
        self.delay_s: dict[str, float] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(Received(self.path, dict(self.headers.items()), body))
                time.sleep(receiver.delay_s.get(self.path, 0))
                statuses = receiver.script.get(self.path) or []
                status = statuses.pop(0) if statuses else 200
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client gave up (a timeout test)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    # Retries pause for milliseconds here, not seconds.
    monkeypatch.setattr(delivery, "BACKOFF_S", (0.01, 0.02))
    monkeypatch.delenv("UET_DASHBOARD_URL", raising=False)
    server = Receiver()
    yield server
    server.close()


def notification(event: NotifyEvent = "run_completed", **changes: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": event,
        "run_id": RUN_ID,
        "phase_id": "PH-DEMO",
        "workflow_id": f"uet-{RUN_ID}",
        "at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "title": "PH-DEMO: run completed",
        "text": "7 workstreams completed in 3 waves.",
        "status": "completed",
        "cost_usd_total": 1.25,
        "budget_usd": 10.0,
    }
    return Notification(**{**fields, **changes})


async def notify(tmp_path: Path, *hooks: WebhookSpec, note: Notification | None = None) -> Any:
    """The activity, run as Temporal runs it (with the workflows' two-minute limit)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, start_to_close_timeout=timedelta(minutes=2))
    acts = NotifyActivities(StateDir(tmp_path))
    spec = NotifySpec(webhooks=list(hooks))
    result = await env.run(acts.notify, NotifyInput(spec=spec, notification=note or notification()))
    assert isinstance(result, NotifyResult)
    return result


# -- the JSON body and its signature --------------------------------------------------------


async def test_json_body_validates_against_the_published_schema_and_is_signed(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_TEST_HOOK_SIGNING", SECRET)
    hook = WebhookSpec(url=f"{receiver.base}/hook", secret_env="UET_TEST_HOOK_SIGNING")
    result = await notify(tmp_path, hook)
    assert result == NotifyResult(delivered=1, failed=[])
    [got] = receiver.received
    schema = json.loads((SCHEMA_DIR / "notification.v1.json").read_text())
    jsonschema.validate(got.json(), schema, format_checker=jsonschema.FormatChecker())
    assert got.json()["event"] == "run_completed"
    assert got.json()["link"] == f"http://127.0.0.1:8300/runs/{RUN_ID}"
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("uet/")
    assert got.headers["X-Uet-Event"] == "run_completed"
    expected = hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
    assert got.headers["X-Uet-Signature"] == f"sha256={expected}"
    assert SECRET not in got.body.decode()


async def test_unsigned_without_secret_env_and_a_missing_secret_is_never_sent(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("UET_TEST_ABSENT_SECRET", raising=False)
    plain = WebhookSpec(url=f"{receiver.base}/plain")
    signed = WebhookSpec(url=f"{receiver.base}/signed", secret_env="UET_TEST_ABSENT_SECRET")
    result = await notify(tmp_path, plain, signed)
    assert result.delivered == 1
    assert result.failed == [
        f"{receiver.base}/…: UET_TEST_ABSENT_SECRET is not set in the worker's environment; "
        "not sent"
    ]
    assert [r.path for r in receiver.received] == ["/plain"]
    assert "X-Uet-Signature" not in receiver.received[0].headers


# -- Slack -----------------------------------------------------------------------------------


async def test_slack_format_is_an_incoming_webhook_message_with_a_link(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_DASHBOARD_URL", "https://uet.example.com:9000/")
    note = notification(
        "review_requested",
        title="PH-DEMO: review requested for ws-api",
        text="gates still fail after 2 fix attempts <!channel> & co",
        status="awaiting_review",
        workstream_id="ws-api",
        review=NotificationReview(
            review_id="01J0000000000000000000REVW", reason="gates_failed", summary="unit failed"
        ),
    )
    result = await notify(
        tmp_path, WebhookSpec(url=f"{receiver.base}/slack", format="slack"), note=note
    )
    assert result.delivered == 1
    body = receiver.received[0].json()
    assert set(body) == {"text", "blocks"}
    link = "https://uet.example.com:9000/reviews"
    assert body["text"] == f"PH-DEMO: review requested for ws-api — <{link}|review>"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context", "actions"]
    header, section, context, actions = body["blocks"]
    assert header["text"] == {"type": "plain_text", "text": "PH-DEMO: review requested for ws-api"}
    assert section["text"]["type"] == "mrkdwn"
    # Slack markup in the text is escaped: no one is pinged.
    assert "&lt;!channel&gt; &amp; co" in section["text"]["text"]
    assert "<!channel>" not in json.dumps(body)
    assert f"<{link}|Open in the uet dashboard>" in section["text"]["text"]
    assert "unit failed" in section["text"]["text"]
    assert "workstream `ws-api`" in context["elements"][0]["text"]
    assert "$1.25 of $10.00 spent" in context["elements"][0]["text"]
    [button] = actions["elements"]
    assert button["type"] == "button" and button["url"] == link
    assert button["text"] == {"type": "plain_text", "text": "Review"}


# -- which webhooks, and masking ---------------------------------------------------------------


async def test_only_webhooks_that_asked_for_the_event_are_told(
    tmp_path: Path, receiver: Receiver
) -> None:
    done = WebhookSpec(url=f"{receiver.base}/done", events=["run_completed", "run_failed"])
    reviews = WebhookSpec(url=f"{receiver.base}/reviews", events=["review_requested"])
    everything = WebhookSpec(url=f"{receiver.base}/all")
    assert everything.events == list(ALL_EVENTS)
    result = await notify(tmp_path, done, reviews, everything)
    assert result == NotifyResult(delivered=2, failed=[])
    assert sorted(r.path for r in receiver.received) == ["/all", "/done"]
    result = await notify(tmp_path, done, note=notification("budget_warning", status="running"))
    assert result == NotifyResult(delivered=0, failed=[])
    assert len(receiver.received) == 2


async def test_secret_looking_values_are_masked_in_title_and_text(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-test-0123456789abcdefghij"
    github = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    monkeypatch.setenv("UET_TEST_OPENAI_API_KEY", key)
    monkeypatch.setenv("UET_TEST_HOOK_SIGNING", SECRET)
    note = notification(
        "run_failed",
        status="failed",
        title=f"PH-DEMO failed:\nkey {key}",
        text=f"tool printed {key}\nand {github}, and {jwt}\nand the signing secret {SECRET}",
    )
    hooks = (
        WebhookSpec(url=f"{receiver.base}/json", secret_env="UET_TEST_HOOK_SIGNING"),
        WebhookSpec(url=f"{receiver.base}/slack", format="slack"),
    )
    result = await notify(tmp_path, *hooks, note=note)
    assert result.delivered == 2
    for got in receiver.received:
        text = got.body.decode()
        assert key not in text and SECRET not in text
        # Not even the parts detect-secrets does not report (a JWT's signature).
        assert "A1b2C3d4" not in text and "dozjgNry" not in text
        assert "***" in text
    body = receiver.at("/json")[0].json()
    assert body["title"] == "PH-DEMO failed: key ***"  # one line
    assert body["text"].splitlines() == [
        "tool printed ***",
        "and ***, and ***",
        "and the signing secret ***",
    ]


# -- retries and failures ------------------------------------------------------------------------


async def test_a_500_then_200_is_retried_and_delivered_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script["/flaky"] = [500, 503]
    result = await notify(tmp_path, WebhookSpec(url=f"{receiver.base}/flaky"))
    assert result == NotifyResult(delivered=1, failed=[])
    attempts = receiver.at("/flaky")
    assert len(attempts) == 3
    # One delivery: every attempt carries the same id and the same bytes.
    assert len({r.headers["X-Uet-Delivery"] for r in attempts}) == 1
    assert len({r.body for r in attempts}) == 1


async def test_a_500_every_time_gives_up_after_three_attempts(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script["/down"] = [500] * 5
    result = await notify(tmp_path, WebhookSpec(url=f"{receiver.base}/down"))
    assert result.failed == [f"{receiver.base}/…: HTTP 500 (after 3 attempts)"]
    assert len(receiver.at("/down")) == 3


async def test_a_404_is_not_retried(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script["/secret-path-404"] = [404]
    result = await notify(tmp_path, WebhookSpec(url=f"{receiver.base}/secret-path-404"))
    assert result == NotifyResult(delivered=0, failed=[f"{receiver.base}/…: HTTP 404"])
    assert len(receiver.received) == 1
    assert "secret-path" not in result.failed[0]


async def test_a_redirect_is_not_followed(tmp_path: Path, receiver: Receiver) -> None:
    # A signed body goes where the spec says, never where a 3xx points.
    receiver.script["/moved"] = [301]
    result = await notify(tmp_path, WebhookSpec(url=f"{receiver.base}/moved"))
    assert result.failed == [f"{receiver.base}/…: HTTP 301 (redirects are not followed)"]
    assert len(receiver.received) == 1


async def test_an_unreachable_url_is_a_failed_line_not_an_exception(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://user:hunter2pass@127.0.0.1:{port}/T000/B000/XXXXSECRET"
    ok = WebhookSpec(url=f"{receiver.base}/ok")
    with caplog.at_level("WARNING", logger="uet.notify"):
        result = await notify(tmp_path, WebhookSpec(url=url), ok)
    assert result.delivered == 1
    [line] = result.failed
    assert line.startswith(f"http://127.0.0.1:{port}/…: could not connect (")
    assert line.endswith("(after 3 attempts)")
    logged = [r.getMessage() for r in caplog.records if r.name == "uet.notify"]
    assert len(logged) == 1 and line in logged[0]
    for text in (line, logged[0]):
        assert "hunter2pass" not in text and "XXXXSECRET" not in text


async def test_a_receiver_that_does_not_answer_times_out_within_the_deadline(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.delay_s["/slow"] = 2.0
    hook = WebhookSpec(url=f"{receiver.base}/slow", timeout_s=0.2)
    started = time.monotonic()
    result = await notify(tmp_path, hook)
    assert result.failed == [f"{receiver.base}/…: no answer within 0.2s (after 3 attempts)"]
    assert time.monotonic() - started < 2.0
    # The whole notification is bounded too, however many attempts a webhook has left.
    started = time.monotonic()
    spec = NotifySpec(webhooks=[WebhookSpec(url=f"{receiver.base}/slow", timeout_s=30)])
    result = await send(NotifyInput(spec=spec, notification=notification()), {}, within_s=0.3)
    assert time.monotonic() - started < 1.5
    [line] = result.failed
    assert line.startswith(f"{receiver.base}/…: no answer within 0.")
    assert line.endswith("s (after 1 attempt)")


async def test_url_from_the_worker_environment(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_TEST_SLACK_URL", f"{receiver.base}/services/T0/B0/abc")
    monkeypatch.delenv("UET_TEST_NO_URL", raising=False)
    result = await notify(
        tmp_path,
        WebhookSpec(url_env="UET_TEST_SLACK_URL", format="slack"),
        WebhookSpec(url_env="UET_TEST_NO_URL"),
    )
    assert result.delivered == 1
    assert result.failed == [
        "$UET_TEST_NO_URL: UET_TEST_NO_URL is not set in the worker's environment"
    ]
    assert [r.path for r in receiver.received] == ["/services/T0/B0/abc"]


# -- the delivery id ---------------------------------------------------------------------------


def test_the_delivery_id_is_stable_and_names_what_it_is_about() -> None:
    first = notification()
    again = notification(at=datetime(2030, 1, 1, tzinfo=UTC), text="other words", link="http://x")
    assert delivery_id(first) == delivery_id(again)
    assert len(delivery_id(first)) == 32
    others = {
        delivery_id(notification("run_failed", status="failed")),
        delivery_id(notification(run_id="01BX5ZZKBKACTAV9WEVGEMMVRZ")),
        delivery_id(notification("budget_warning", status="running", workstream_id="ws-a")),
        delivery_id(
            notification(
                "review_requested",
                status="awaiting_review",
                review=NotificationReview(review_id="R1", reason="quarantined"),
            )
        ),
        delivery_id(
            notification(
                "review_requested",
                status="awaiting_review",
                review=NotificationReview(review_id="R2", reason="quarantined"),
            )
        ),
    }
    assert delivery_id(first) not in others and len(others) == 5


def test_webhook_urls_are_logged_without_path_or_password() -> None:
    assert (
        redact_webhook_url("https://hooks.slack.com/services/T/B/x") == "https://hooks.slack.com/…"
    )
    assert redact_webhook_url("http://u:p@h:8080/x?token=1") == "http://h:8080/…"
    assert redact_webhook_url("https://h.example") == "https://h.example"
    assert redact_webhook_url("not a url") == "<invalid URL>"


# -- the contract and the spec -------------------------------------------------------------------


def test_phase_status_is_the_phase_state() -> None:
    assert set(get_args(PhaseStatus)) == {s.value for s in PhaseState}
    # The workflow may pass the enum itself.
    assert notification(status=PhaseState.FAILED).status == "failed"


def test_notify_is_registered_and_in_the_phase_schema() -> None:
    assert NotifyActivities in ACTIVITY_CLASSES
    names = {getattr(fn, "__name__", "") for fn in all_activities(StateDir(Path("/nonexistent")))}
    assert "notify" in names
    schema = json.loads((SCHEMA_DIR / "phase_spec.v1.json").read_text())
    assert "notify" in schema["properties"]
    spec = PhaseSpec.model_validate({"phase_id": "P", "workstreams": [{"workstream_id": "a"}]})
    assert spec.notify == NotifySpec(webhooks=[])


VALID = """\
phase_id: P
notify:
  webhooks:
    - url: https://hooks.example.com/uet
      events: [review_requested, run_failed]
      secret_env: UET_HOOK_SECRET
    - {url_env: SLACK_WEBHOOK_URL, format: slack, timeout_s: 5}
workstreams:
  - {workstream_id: a, execution_request: {command: x}}
"""

BAD = """\
phase_id: P
notify:
  webhooks:
    - url: ftp://hooks.example.com/uet
      secret_env: my-secret
    - {url: "https://h", url_env: URL}
    - {url: "https://h", events: [review_requestd], secrett_env: A, timeout_s: 100, format: xml}
workstreams:
  - {workstream_id: a, execution_request: {command: x}}
"""


def test_notify_is_validated_like_every_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "phase.yaml"
    spec.write_text(VALID)
    assert main(["validate", str(spec)]) == 0
    capsys.readouterr()
    parsed = PhaseSpec.model_validate(
        {
            "phase_id": "P",
            "notify": {"webhooks": [{"url": "http://h/x"}]},
            "workstreams": [{"workstream_id": "a"}],
        }
    )
    assert parsed.notify.webhooks[0].events == list(ALL_EVENTS)

    # The schema's errors first (types, names, enums), each on its own line ...
    spec.write_text(BAD)
    assert main(["validate", str(spec)]) == 2
    err = [
        line.removeprefix("uet: ").replace(str(tmp_path) + "/", "")
        for line in capsys.readouterr().err.splitlines()
    ]
    assert err == [
        "phase.yaml:7: $.notify.webhooks[2]: unknown field 'secrett_env' (did you mean 'secret_env'?)",
        "phase.yaml:7: $.notify.webhooks[2].events[0]: 'review_requestd' is not one of "
        "['review_requested', 'run_completed', 'run_failed', 'budget_warning']",
        "phase.yaml:7: $.notify.webhooks[2].format: 'xml' is not one of ['json', 'slack']",
        "phase.yaml:7: $.notify.webhooks[2].timeout_s: 100 is greater than the maximum of 30.0",
    ]
    # ... then, once those are fixed, what the models check (URLs, names, one address).
    spec.write_text(BAD.replace(BAD.splitlines()[6], '    - {url: "https://h"}'))
    assert main(["validate", str(spec)]) == 2
    err = [
        line.removeprefix("uet: ").replace(str(tmp_path) + "/", "")
        for line in capsys.readouterr().err.splitlines()
    ]
    assert err == [
        "phase.yaml:4: $.notify.webhooks[0].url: 'ftp://hooks.example.com/uet' is not an http "
        "or https URL",
        "phase.yaml:5: $.notify.webhooks[0].secret_env: 'my-secret' is not an environment "
        "variable name (the NAME of a worker variable, never its value)",
        "phase.yaml:6: $.notify.webhooks[1]: give exactly one of url or url_env",
    ]


# -- from a run: the phase workflow sends them as its journal records the events ---------------


async def test_a_run_tells_its_webhooks_of_the_review_and_the_end_signed_and_in_order(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    receiver: Receiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from helpers import phase, record_of, run_input, start_phase, wait_for_status

    from schemas.review import ReviewDecision
    from workflows.phase import PhaseWorkflow

    monkeypatch.setenv("UET_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("UET_DASHBOARD_URL", "http://dash.example:8300")
    repo = make_repo({"f.txt": "f\n"})
    spec = phase(
        notify={
            "webhooks": [
                {"url": f"{receiver.base}/all", "secret_env": "UET_TEST_HOOK_SECRET"},
                {"url": f"{receiver.base}/ends", "events": ["run_completed", "run_failed"]},
            ]
        },
        workstreams=[
            {
                "workstream_id": "ws-a",
                "review": "always",
                "execution_request": {"command": "echo a > a.txt"},
            }
        ],
    )
    handle = await start_phase(client, settings, run_input(spec, repo))
    await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
    (request,) = await handle.query(PhaseWorkflow.pending_reviews)
    await handle.execute_update(
        PhaseWorkflow.submit_review,
        ReviewDecision(review_id=request.review_id, decision="approve", reviewer="alice"),
    )
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason

    every = receiver.at("/all")
    assert [r.json()["event"] for r in every] == ["review_requested", "run_completed"]
    review, done = (r.json() for r in every)
    assert review["review"]["review_id"] == request.review_id
    assert review["workstream_id"] == "ws-a"
    assert review["link"] == "http://dash.example:8300/reviews"
    assert done["link"] == f"http://dash.example:8300/runs/{record.run_id}"
    assert done["status"] == "completed" and done["run_id"] == record.run_id
    schema = json.loads((SCHEMA_DIR / "notification.v1.json").read_text())
    for body in every:
        jsonschema.validate(body.json(), schema)
        expected = hmac.new(SECRET.encode(), body.body, hashlib.sha256).hexdigest()
        assert body.headers["X-Uet-Signature"] == f"sha256={expected}"
    # The second webhook asked for the end only, and is not signed.
    (end,) = receiver.at("/ends")
    assert end.json()["event"] == "run_completed"
    assert "X-Uet-Signature" not in end.headers
