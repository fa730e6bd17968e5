"""The dashboard's routes (Starlette). ``create_app`` takes the data it shows — a Dashboard with
its Temporal client and settings — so tests and benches give it theirs.

Pages: ``/`` runs · ``/runs/{run}`` a run · ``/runs/{run}/ws/{ws}`` a workstream ·
``/reviews`` the review inbox (POST ``/reviews/{run}/{ws}`` decides) · ``/insights``.
Each live page has an event stream under ``/live/…`` (live.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from runtime.errors import UserError
from runtime.reviewing import default_reviewer, submit
from runtime.ui import live, render
from runtime.ui.data import Dashboard, Insights, RunWatch, Snapshot, workstream_entries
from runtime.ui.pages import ENV, STATIC, Links
from runtime.ui.security import Forbidden, Guard, csrf_token, read_form
from schemas.ledger import LedgerEntry
from schemas.review import ReviewRequest
from schemas.run import PhaseState, WorkstreamState

LINKS = Links()
#: How long a gate log's tail is on the review card (the whole log is a link away).
LOG_TAIL_BYTES = 8_000


def stylesheet() -> str:
    """The dashboard's and the report's CSS: ours, then pygments' for diffs."""
    return (STATIC / "style.css").read_text("utf-8") + "\n" + render.pygments_css() + "\n"


def create_app(
    dashboard: Dashboard,
    *,
    token: str | None = None,
    loopback_only: bool = True,
    reviewer: str | None = None,
) -> Starlette:
    ui = Views(dashboard, reviewer or default_reviewer())
    routes = [
        Route("/", ui.runs),
        Route("/runs/{run_id}", ui.run),
        Route("/runs/{run_id}/ledger.json", ui.ledger_json),
        Route("/runs/{run_id}/ws/{ws_id}", ui.workstream),
        Route("/runs/{run_id}/artifacts/{sha256}", ui.artifact),
        Route("/reviews", ui.inbox),
        Route("/reviews/{run_id}/{ws_id}", ui.decide, methods=["POST"]),
        Route("/insights", ui.insights),
        Route("/live/runs", ui.live_runs),
        Route("/live/runs/{run_id}", ui.live_run),
        Route("/live/runs/{run_id}/ws/{ws_id}", ui.live_workstream),
        Route("/live/reviews", ui.live_inbox),
        Route("/static/style.css", ui.css),
        Route("/static/live.js", ui.script),
        Route("/healthz", ui.health),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await dashboard.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.dashboard = dashboard
    # Outermost: nothing is routed before the host, the token and the origin are checked.
    app.add_middleware(Guard, token=token, loopback_only=loopback_only)
    return app


class Views:
    def __init__(self, dashboard: Dashboard, reviewer: str) -> None:
        self.d = dashboard
        self.reviewer = reviewer
        self._css = stylesheet()
        self._evidence: dict[str, dict[str, Any]] = {}
        #: A running workstream's own entries, asked when its page was drawn (its stream
        #: keeps showing them until the phase has them).
        self._extra: dict[tuple[str, str], list[LedgerEntry]] = {}

    # -- helpers ------------------------------------------------------------------------------

    def page(
        self, request: Request, name: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        context.setdefault("live", "")
        context.setdefault("nav", "")
        context.setdefault("links", LINKS)
        context["csrf"] = csrf_token(request)
        return HTMLResponse(ENV.get_template(name).render(**context), status_code=status_code)

    def problem(self, request: Request, message: str, status_code: int = 404) -> HTMLResponse:
        return self.page(request, "error.html", status_code, title="Not available", message=message)

    async def snapshot(self, run_id: str) -> tuple[RunWatch, Snapshot]:
        watch = self.d.watch(run_id)
        return watch, await watch.current()

    # -- pages --------------------------------------------------------------------------------

    async def runs(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        phase = request.query_params.get("phase") or None
        statuses = [str(s) for s in PhaseState]
        if status not in (None, *statuses):
            return self.problem(request, f"no such status {status!r}", 400)
        try:
            listings = await self.d.runs(status, phase)
        except UserError as exc:
            return self.problem(request, exc.lines[0], 503)
        query = urlencode({k: v for k, v in (("status", status), ("phase", phase)) if v})
        return self.page(
            request,
            "runs.html",
            nav="runs",
            runs=listings,
            statuses=statuses,
            status=status or "",
            phase=phase or "",
            filtered=bool(status or phase),
            live="/live/runs" + (f"?{query}" if query else ""),
        )

    async def run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            watch, snap = await self.snapshot(run_id)
        except UserError as exc:
            return self.problem(request, exc.lines[0])
        drawn = watch.fragments("run", snap, lambda s: live.run_fragments(s, LINKS))
        return self.page(
            request,
            "run.html",
            s=snap,
            dag=render.dag_svg(snap.record, snap.plan, LINKS.for_run(run_id)),
            gantt=render.gantt_svg(live.chart(snap), LINKS.for_run(run_id)),
            cells={
                ws: {key: drawn[("html", f"{key}-{ws}")] for key in live.CELLS}
                for ws in snap.record.workstreams
            },
            entries=live.latest_entries(snap),
            ledger_rows=live.LEDGER_ROWS,
            states=[str(s) for s in WorkstreamState],
            live=f"/live/runs/{quote(run_id)}?tick={snap.tick}" if snap.running else "",
        )

    async def ledger_json(self, request: Request) -> Response:
        try:
            _, snap = await self.snapshot(request.path_params["run_id"])
        except UserError as exc:
            return JSONResponse({"error": exc.lines[0]}, status_code=404)
        return Response(
            render.mask("[" + ",".join(e.model_dump_json() for e in snap.ledger) + "]"),
            media_type="application/json",
        )

    async def workstream(self, request: Request) -> Response:
        run_id, ws_id = request.path_params["run_id"], request.path_params["ws_id"]
        try:
            _, snap = await self.snapshot(run_id)
        except UserError as exc:
            return self.problem(request, exc.lines[0])
        state = snap.record.workstreams.get(ws_id)
        if state is None:
            return self.problem(request, f"run {run_id} has no workstream {ws_id!r}")
        extra: list[LedgerEntry] = []
        if snap.running and state.status == WorkstreamState.RUNNING:
            extra = await self.d.running_workstream_ledger(run_id, ws_id)
        elif (
            snap.running
            and state.status != WorkstreamState.PENDING
            and not workstream_entries(snap.ledger, ws_id)
        ):  # it finished since the last ledger tick
            snap = await self.d.watch(run_id).with_ledger()
        entries = live.merged(snap.ledger, extra, ws_id)
        diff = diff_link = None
        last = entries[-1] if entries else None
        if last is not None and last.patch is not None:
            diff = render.diff_html(await self.d.read(last.patch.ref))
            diff_link = LINKS.artifact(run_id, last.patch.sha256)
        query = urlencode({"tick": snap.tick})
        self._extra[(run_id, ws_id)] = extra
        return self.page(
            request,
            "workstream.html",
            s=snap,
            ws_id=ws_id,
            entries=entries,
            diff=diff,
            diff_link=diff_link,
            live=f"/live/runs/{quote(run_id)}/ws/{quote(ws_id)}?{query}" if snap.running else "",
        )

    async def artifact(self, request: Request) -> Response:
        """A blob the run refers to (a diff, a gate log), as text, masked; nothing else."""
        run_id, sha = request.path_params["run_id"], request.path_params["sha256"]
        try:
            _, snap = await self.snapshot(run_id)
        except UserError as exc:
            return PlainTextResponse(exc.lines[0], status_code=404)
        ref = snap.artifacts().get(sha)
        if ref is None:
            return PlainTextResponse(f"run {run_id} refers to no artifact {sha}", 404)
        return PlainTextResponse(render.mask(await self.d.read(ref)))

    async def inbox(self, request: Request) -> Response:
        return await self.inbox_page(request, done=request.query_params.get("done", ""))

    async def inbox_page(
        self,
        request: Request,
        done: str = "",
        refusal: tuple[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        try:
            items, problems = await self.inbox_items(refusal)
        except UserError as exc:
            return self.problem(request, exc.lines[0], 503)
        if refusal is not None and not any(i["refusal"] for i in items):
            problems = [refusal[1], *problems]
        return self.page(
            request,
            "inbox.html",
            status_code,
            nav="reviews",
            items=items,
            problems=problems,
            done=done,
            reviewer=self.reviewer,
            live="/live/reviews",
        )

    async def inbox_items(
        self, refusal: tuple[str, str] | None = None
    ) -> tuple[list[dict[str, Any]], list[str]]:
        found, problems = await self.d.inbox()
        items = []
        for snap, request in found:
            evidence = await self.evidence(snap, request)
            items.append(
                {
                    "request": request,
                    "allowed_reviewers": snap.plan.allowed_reviewers,
                    "refusal": refusal[1] if refusal and refusal[0] == request.review_id else "",
                    **evidence,
                }
            )
        return items, problems

    async def evidence(self, snap: Snapshot, request: ReviewRequest) -> dict[str, Any]:
        """The patch and gate logs a review shows (read once per review)."""
        if request.review_id not in self._evidence:
            diff = None
            if request.patch is not None:
                diff = render.diff_html(await self.d.read(request.patch))
            logs = [
                {
                    "text": render.tail(await self.d.read(ref, LOG_TAIL_BYTES), 60),
                    "link": LINKS.artifact(snap.run_id, ref.sha256),
                }
                for ref in request.gate_logs
            ]
            self._evidence[request.review_id] = {"diff": diff, "logs": logs}
        return self._evidence[request.review_id]

    async def decide(self, request: Request) -> Response:
        run_id, ws_id = request.path_params["run_id"], request.path_params["ws_id"]
        try:
            form = await read_form(request)
        except Forbidden as refused:
            return PlainTextResponse(refused.reason, status_code=403)
        review_id = form.get("review_id", "")
        kind = form.get("decision", "")
        if kind not in ("approve", "reject", "adjust", "retry"):
            return await self.inbox_page(
                request, refusal=(review_id, f"refused: no decision {kind!r}"), status_code=400
            )
        try:
            budget = float(form["budget_increase"]) if form.get("budget_increase") else None
        except ValueError:
            return await self.inbox_page(
                request,
                refusal=(review_id, "refused: the budget increase is not an amount of dollars"),
                status_code=400,
            )
        try:
            done = await submit(
                self.d.client,
                run_id,
                ws_id,
                kind,  # type: ignore[arg-type]
                reviewer=form.get("reviewer", "").strip() or self.reviewer,
                comment=form.get("comment", ""),
                instructions=form.get("instructions", ""),
                rollback=form.get("rollback") == "1",
                budget_increase=budget,
                review_id=review_id or None,
            )
        except UserError as exc:
            return await self.inbox_page(
                request, refusal=(review_id, exc.lines[0]), status_code=409
            )
        # The next page must not show the review as pending: ask the run again now.
        await self.d.watch(run_id).refresh()
        message = (
            f"{done.answer.decision} recorded for {run_id} {ws_id} by {done.decision.reviewer}"
        )
        return RedirectResponse("/reviews?" + urlencode({"done": message}), status_code=303)

    async def insights(self, request: Request) -> Response:
        try:
            since = float(request.query_params.get("since", "30"))
        except ValueError:
            since = 30.0
        found = await self.d.insights(since)
        return self.page(
            request,
            "insights.html",
            nav="insights",
            found=found,
            charts=insight_charts(found),
            since=f"{since:g}",
        )

    async def css(self, request: Request) -> Response:
        return Response(self._css, media_type="text/css")

    async def script(self, request: Request) -> Response:
        return Response((STATIC / "live.js").read_text("utf-8"), media_type="text/javascript")

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "queries": dict(self.d.queries)})

    # -- live ---------------------------------------------------------------------------------

    def sse(self, events: AsyncIterator[str]) -> StreamingResponse:
        return StreamingResponse(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def live_run(self, request: Request) -> Response:
        run_id = request.path_params["run_id"]
        try:
            watch, _ = await self.snapshot(run_id)
        except UserError as exc:
            return PlainTextResponse(exc.lines[0], status_code=404)

        def build(s: Snapshot) -> live.Fragments:
            return live.run_fragments(s, LINKS)

        tick = _int(request.query_params.get("tick"))
        first = watch.cached_fragments("run", tick) or {}
        return self.sse(
            live.stream(
                first,
                tick if first else 0,
                _follow(watch, lambda s: watch.fragments("run", s, build)),
                request.is_disconnected,
            )
        )

    async def live_workstream(self, request: Request) -> Response:
        run_id, ws_id = request.path_params["run_id"], request.path_params["ws_id"]
        try:
            watch, snap = await self.snapshot(run_id)
        except UserError as exc:
            return PlainTextResponse(exc.lines[0], status_code=404)
        if ws_id not in snap.record.workstreams:
            return PlainTextResponse(f"no workstream {ws_id!r}", status_code=404)
        extra = self._extra.get((run_id, ws_id), [])

        def build(s: Snapshot) -> live.Fragments:
            return live.workstream_fragments(s, ws_id, LINKS, extra)

        tick = _int(request.query_params.get("tick"))
        first = build(snap) if snap.tick == tick else {}
        return self.sse(
            live.stream(first, snap.tick, _follow(watch, build), request.is_disconnected)
        )

    async def live_runs(self, request: Request) -> Response:
        status = request.query_params.get("status") or None
        phase = request.query_params.get("phase") or None

        async def listing() -> live.Fragments:
            return live.runs_fragments(await self.d.runs(status, phase), LINKS)

        return self.sse(
            live.stream(
                await listing(), 0, _every(self.d.interval_s, listing), request.is_disconnected
            )
        )

    async def live_inbox(self, request: Request) -> Response:
        seen: list[Any] = [None]

        async def items() -> live.Fragments | None:
            found, _ = await self.d.inbox()
            ids = [r.review_id for _, r in found]
            if ids == seen[0]:
                return None  # unchanged: the list (and what a reviewer typed) stays
            seen[0] = ids
            listed, _ = await self.inbox_items()
            html = ENV.get_template("_inbox_list.html").render(
                items=listed, links=LINKS, csrf=csrf_token(request), reviewer=self.reviewer
            )
            return {("html", "inbox-list"): html}

        await items()  # what the page was drawn with
        return self.sse(
            live.stream({}, 0, _every(self.d.interval_s, items), request.is_disconnected)
        )


def _follow(
    watch: RunWatch, build: Callable[[Snapshot], live.Fragments]
) -> Callable[[int], Awaitable[Any]]:
    async def next_fragments(tick: int) -> Any:
        snap = await watch.next(tick, timeout_s=15)
        if snap is None:
            if watch.snapshot is not None and not watch.snapshot.running:
                return ...  # the run has ended and its last state is sent
            return None
        return snap.tick, build(snap)

    return next_fragments


def _every(
    interval_s: float, build: Callable[[], Awaitable[live.Fragments | None]]
) -> Callable[[int], Awaitable[Any]]:
    async def next_fragments(tick: int) -> Any:
        await asyncio.sleep(interval_s)
        found = await build()
        return None if found is None else (tick + 1, found)

    return next_fragments


def _int(text: str | None) -> int:
    try:
        return int(text or "")
    except ValueError:
        return -1


def insight_charts(found: Insights) -> dict[str, Markup]:
    data = found.data
    tools = data.get("tools", [])

    def name(t: dict[str, Any]) -> str:
        return " / ".join(str(p) for p in (t["tool_id"], t["model"], t["task_kind"]) if p)

    pct = "{:.0%}".format
    seconds = "{:.1f} s".format
    charts = {
        "success": render.bar_chart(
            [(name(t), t["success_rate"]) for t in tools], pct, 1.0, "success rate"
        ),
        "duration": render.bar_chart(
            [(name(t), t["duration_mean_s"]) for t in tools], seconds, title="mean duration"
        ),
        "p90": render.bar_chart(
            [(name(t), t["duration_p90_s"]) for t in tools], seconds, title="p90 duration"
        ),
        "cost": render.bar_chart(
            [(name(t), t["cost_usd"]) for t in tools], render.money, title="cost"
        ),
        "errors": render.bar_chart(
            [
                (f"{e['signature']} ({e['category']})", e["occurrences"])
                for e in data.get("errors", [])
            ],
            lambda v: f"{v:g} times",
            title="top errors",
        ),
        "gates": render.bar_chart(
            [(g.get("gate_id", ""), g.get("failure_rate", 0.0)) for g in data.get("gates", [])],
            pct,
            1.0,
            "gate failure rate",
        ),
        "daily_cost": render.line_chart(
            [(d["day"], d["cost_usd"]) for d in found.daily], render.money, "cost per day"
        ),
        "daily_runs": render.line_chart(
            [(d["day"], d["runs"]) for d in found.daily], lambda v: f"{v:g}", "runs per day"
        ),
        "daily_success": render.line_chart(
            [(d["day"], d["success_rate"]) for d in found.daily], pct, "success per day"
        ),
    }
    return charts
