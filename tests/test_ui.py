"""The dashboard (`uet ui`): a live run in a real browser (Playwright driving Debian's
chromium), the review inbox's approve going through `submit_review`, and the rules of who may
use it — token, CSRF, origin, loopback — and what it never renders (markup from a diff,
secrets)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.cli import main
from runtime.settings import Settings
from runtime.ui import render
from runtime.ui.app import create_app
from runtime.ui.data import Dashboard
from runtime.ui.serve import serving
from schemas.run import PhaseState, WorkstreamState

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = "<script>alert('pwned')</script>"


def browser_args() -> dict[str, Any]:
    executable = shutil.which("chromium")
    if executable is None:
        if os.environ.get("UET_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required here (UET_REQUIRE_CHROMIUM) but not installed")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    return {
        "executable_path": executable,
        "args": ["--no-sandbox"] if os.geteuid() == 0 else [],
    }


def live_phase(go: Path, **extra: Any) -> Any:
    """a (running until the test creates ``go``: seen running however slow the browser
    starts) → b (asks for approval) → c."""
    return phase(
        workstreams=[
            {
                "workstream_id": "ws-a",
                "title": "writes markup",
                "execution_request": {
                    "command": f"while [ ! -e {go} ]; do sleep 0.1; done; "
                    f"printf '%s\\n' \"{SCRIPT}\" > page.html"
                },
            },
            {
                "workstream_id": "ws-b",
                "dependencies": ["ws-a"],
                "review": "always",
                "execution_request": {"command": "echo b > b.txt"},
            },
            {
                "workstream_id": "ws-c",
                "dependencies": ["ws-b"],
                "execution_request": {"command": "echo c > c.txt"},
            },
        ],
        **extra,
    )


@pytest.fixture
async def dashboard(client: Client, settings: Settings) -> AsyncIterator[Dashboard]:
    found = Dashboard(client, settings)
    yield found
    await found.close()


async def test_a_live_run_in_the_browser_and_approve_from_the_inbox(
    client: Client, settings: Settings, worker: Worker, make_repo, dashboard: Dashboard
) -> None:
    from playwright.async_api import async_playwright, expect

    repo: Path = make_repo({"a.txt": "a\n"})
    go = repo.parent / "go"
    run = run_input(live_phase(go), repo)
    handle = await start_phase(client, settings, run)
    await wait_for_status(handle, lambda s: s.workstreams["ws-a"].status == "running")
    async with (
        serving(create_app(dashboard)) as base,
        async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(**browser_args())
        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        dialogs: list[str] = []
        page.on("dialog", lambda d: dialogs.append(d.message))
        await page.goto(f"{base}/runs/{run.run_id}")
        node = page.locator("#n-ws-a")
        await expect(node).to_have_class("node s-running crit")
        # A mark on the page: it survives only if the page is never reloaded.
        await page.evaluate("window.uetMark = 'same page'")
        go.touch()  # now ws-a finishes, while the page is open
        await expect(node).to_have_class("node s-completed crit", timeout=20_000)
        await expect(page.locator("#n-ws-b")).to_have_class(
            "node s-awaiting_review crit", timeout=20_000
        )
        await expect(page.locator("#st-ws-b")).to_have_text("awaiting_review")
        # The ledger follows too (its query takes a tick's place every few seconds).
        await expect(page.locator("#run-ledger")).to_contain_text("committed", timeout=15_000)
        assert await page.evaluate("window.uetMark") == "same page"
        if os.environ.get("UET_SCREENSHOTS"):
            await page.screenshot(path=str(ROOT / "docs" / "dashboard-run.png"), full_page=True)

        # The workstream page: the diff with the markup a tool wrote, shown as text.
        await page.goto(f"{base}/runs/{run.run_id}/ws/ws-a")
        await expect(page.locator(".diff")).to_contain_text(SCRIPT)
        assert await page.locator("script").count() == 1  # live.js, nothing else
        assert dialogs == []

        await page.goto(f"{base}/reviews")
        card = page.locator("article.review", has_text="ws-b")
        await expect(card).to_contain_text("approval_required")
        await card.locator("input[name=comment]").fill("looks right")
        if os.environ.get("UET_SCREENSHOTS"):
            await page.screenshot(path=str(ROOT / "docs" / "dashboard-inbox.png"), full_page=True)
        await card.locator("button[value=approve]").click()
        await expect(page.locator("#done")).to_contain_text("approve recorded for")
        await expect(page.locator("#inbox-empty")).to_be_visible()

        await page.goto(f"{base}/runs/{run.run_id}")
        await page.evaluate("window.uetMark = 'same page'")
        await expect(page.locator("#n-ws-c")).to_have_class("node s-completed crit", timeout=30_000)
        assert await page.evaluate("window.uetMark") == "same page"
        await browser.close()
    record = await record_of(handle)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert record.workstreams["ws-c"].status == WorkstreamState.COMPLETED
    (review,) = record.reviews
    assert review.decision is not None
    assert review.decision.decision == "approve" and review.decision.comment == "looks right"
    # Status queries stayed within one a second (plus the few a page load or decision asks).
    assert dashboard.queries["status"] >= 1


# -- who may use it ---------------------------------------------------------------------------


def asgi(app: Any, host: str = "127.0.0.1:8300") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url=f"http://{host}", follow_redirects=False
    )


async def test_loopback_only_answers_loopback_names(client: Client, settings: Settings) -> None:
    app = create_app(Dashboard(client, settings))
    async with asgi(app) as http:
        ok = await http.get("/healthz")
        assert ok.status_code == 200
        for name, value in {
            "content-security-policy": "script-src 'self'",
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
        }.items():
            assert value in ok.headers[name]
        csrf = ok.cookies.get("uet_csrf")
        assert csrf and "httponly" in ok.headers["set-cookie"].lower()
    # A page elsewhere that resolves its own name to 127.0.0.1 (DNS rebinding) gets nothing.
    async with asgi(app, host="evil.example:8300") as http:
        assert (await http.get("/healthz")).status_code == 421


async def test_a_token_is_needed_on_every_request_when_set(
    client: Client, settings: Settings
) -> None:
    app = create_app(Dashboard(client, settings), token="s3cret-token", loopback_only=False)
    async with asgi(app, host="dash.example:8300") as http:
        assert (await http.get("/healthz")).status_code == 401
        assert (await http.get("/healthz?token=wrong")).status_code == 401
        bearer = {"Authorization": "Bearer s3cret-token"}
        assert (await http.get("/healthz", headers=bearer)).status_code == 200
        # ?token= sets an HttpOnly cookie once and leaves the address bar.
        first = await http.get("/insights?token=s3cret-token&since=7")
        assert first.status_code == 303 and first.headers["location"] == "/insights?since=7"
        cookie = first.headers["set-cookie"]
        assert "uet_ui_token=s3cret-token" in cookie and "HttpOnly" in cookie
        again = await http.get("/healthz", headers={"Cookie": "uet_ui_token=s3cret-token"})
        assert again.status_code == 200


async def test_posts_need_this_origin_and_the_sessions_csrf_token(
    client: Client, settings: Settings
) -> None:
    app = create_app(Dashboard(client, settings))
    form = {"csrf": "abc", "review_id": "r", "decision": "approve", "reviewer": "alice"}
    async with asgi(app) as http:
        cookie = {"Cookie": "uet_csrf=abc"}
        cross = await http.post(
            "/reviews/RUN/ws", data=form, headers={**cookie, "Origin": "https://evil.example"}
        )
        assert cross.status_code == 403 and "evil.example" in cross.text
        site = await http.post(
            "/reviews/RUN/ws", data=form, headers={**cookie, "Sec-Fetch-Site": "cross-site"}
        )
        assert site.status_code == 403
        wrong = await http.post(
            "/reviews/RUN/ws",
            data={**form, "csrf": "not-it"},
            headers={**cookie, "Origin": "http://127.0.0.1:8300"},
        )
        assert wrong.status_code == 403 and "CSRF" in wrong.text
        # Same origin and token: it reaches submit_review's path, which refuses a run it
        # does not know, on the inbox page.
        fine = await http.post(
            "/reviews/NO-SUCH-RUN/ws",
            data=form,
            headers={**cookie, "Origin": "http://127.0.0.1:8300"},
        )
        assert fine.status_code == 409 and "NO-SUCH-RUN" in fine.text


def test_uet_ui_refuses_another_host_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("UET_UI_TOKEN", raising=False)
    assert main(["ui", "--host", "0.0.0.0"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "UET_UI_TOKEN" in lines[0]


# -- what it never renders ----------------------------------------------------------------------


def test_diffs_logs_and_secrets_are_escaped_and_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UET_TEST_API_KEY", "sk-verysecretvalue")
    monkeypatch.setattr(render, "_secrets", (0.0, ()))  # read the environment again
    diff = f"--- a/x.html\n+++ b/x.html\n@@ -0,0 +1 @@\n+{SCRIPT} sk-verysecretvalue\n"
    html = str(render.diff_html(diff))
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "sk-verysecretvalue" not in html and "***" in html
    assert str(render.esc(f"{SCRIPT} sk-verysecretvalue")) == (
        "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; ***"
    )
    from runtime.ui.pages import ENV

    page = ENV.from_string("<p>{{ reason }}</p>").render(reason=f"{SCRIPT} sk-verysecretvalue")
    assert page == "<p>&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt; ***</p>"
