"""What the dashboard shows, read from where uet keeps it: Temporal (visibility for the list of
runs, the phase's queries for a live run, the workflow's result or report folder for a finished
one), the artifact store (journal parts, diffs, gate logs) and the telemetry database.

Temporal's load is bounded by design: each run open in any page has one ``RunWatch``, and the
watch alone asks Temporal — once a second, one query per tick, whatever number of pages and
event streams show that run. Everything a page draws comes from the watch's latest snapshot.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import make_url
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.lib.artifacts import ArtifactStore, open_artifact_store
from activities.lib.journal_store import compose
from activities.lib.parts import read_run_document
from activities.lib.planning import plan_phase
from activities.lib.telemetry import insights as analysis
from activities.lib.telemetry.models import Execution
from activities.lib.telemetry.store import Telemetry, database_url, learning_disabled
from runtime.cli.runs import RunRow, find_runs
from runtime.connect import phase_handle
from runtime.errors import UserError
from runtime.records import final_record, read_report, rollback_record
from runtime.settings import Settings
from schemas.base import ArtifactRef
from schemas.events import RunEvent
from schemas.ledger import LedgerEntry
from schemas.refs import workflow_id
from schemas.review import ReviewRequest, pending_requests
from schemas.run import PhaseState, RunInput, RunRecord
from workflows.phase import PhaseWorkflow

#: How often a watch asks Temporal about its run (the issue's budget: one query per second).
INTERVAL_S = 1.0
#: A watch nobody has looked at for this long stops asking.
IDLE_S = 10.0
#: The ledger is asked for at most this often, in place of a status query (see RunWatch._tick).
LEDGER_EVERY_S = 3.0
QUERY_TIMEOUT_S = 5.0
#: Records a phase reports before it has closed its workflow.
ENDED = frozenset(
    {PhaseState.COMPLETED, PhaseState.FAILED, PhaseState.ROLLED_BACK, PhaseState.CANCELED}
)


@dataclass(frozen=True)
class PlanInfo:
    """What the record does not carry: each workstream's dependencies and title, the plan's
    critical path, when the run started — from the run's input, read once."""

    dependencies: dict[str, list[str]] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)
    critical_path: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    allowed_reviewers: list[str] = field(default_factory=list)
    note: str | None = None  # why the plan is not known

    @property
    def critical_edges(self) -> set[tuple[str, str]]:
        return set(zip(self.critical_path, self.critical_path[1:], strict=False))


@dataclass(frozen=True)
class Snapshot:
    """One run as the dashboard knows it at one tick of its watch."""

    run_id: str
    record: RunRecord
    running: bool
    plan: PlanInfo
    tick: int
    at: datetime  # when it was asked
    ledger: list[LedgerEntry] = field(default_factory=list)
    events: list[RunEvent] = field(default_factory=list)
    #: workstream → state → when this watch first saw it there (wall clock; the workflow's
    #: clock is the same one give or take a task).
    observed: dict[str, dict[str, datetime]] = field(default_factory=dict)
    note: str | None = None
    problem: str | None = None  # e.g. no worker answers: the record shown is the last known

    @property
    def pending(self) -> list[ReviewRequest]:
        return pending_requests(self.record.reviews)

    def artifacts(self) -> dict[str, ArtifactRef]:
        """Every blob this run's pages may show, by sha256 (nothing else is served)."""
        refs: dict[str, ArtifactRef] = {}
        for entry in self.ledger:
            if entry.patch is not None:
                refs[entry.patch.sha256] = entry.patch.ref
            for gate in entry.gates:
                if gate.log is not None:
                    refs[gate.log.sha256] = gate.log
        for gate in self.record.phase_gates:
            if gate.log is not None:
                refs[gate.log.sha256] = gate.log
        for review in self.record.reviews:
            request = review.request
            for ref in [request.patch, *request.gate_logs]:
                if ref is not None:
                    refs[ref.sha256] = ref
        return refs


class RunWatch:
    """One run, asked of Temporal at most once per ``interval_s``, shared by every page.

    While someone looks (a page was drawn or an event stream is open in the last IDLE_S), a
    poller task asks once per tick and wakes the streams. Each tick makes exactly one query:
    ``status``, or — at most every LEDGER_EVERY_S, after a workstream moved — ``ledger``
    instead, so the load stays at one query per second and the ledger still follows."""

    def __init__(self, dashboard: Dashboard, run_id: str) -> None:
        self.dashboard = dashboard
        self.run_id = run_id
        self.snapshot: Snapshot | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._poller: asyncio.Task[None] | None = None
        self._seen_at = time.monotonic()
        self._asked_at = 0.0
        self._ledger_at = 0.0
        self._ledger_wanted = True
        self._phase_ledger: list[LedgerEntry] = []
        self._journal: list[str] = []  # shas of the journal parts composed so far
        self._journal_view: tuple[list[LedgerEntry], list[RunEvent]] = ([], [])
        self._observed: dict[str, dict[str, datetime]] = defaultdict(dict)
        self._fragments: dict[tuple[str, int], Any] = {}  # (page kind, tick) → fragments

    # -- what pages call ------------------------------------------------------------------

    async def current(self) -> Snapshot:
        """The latest snapshot; asked now if there is none or it is older than a tick and no
        poller keeps it fresh."""
        self._seen_at = time.monotonic()
        if self.snapshot is None or (
            self.snapshot.running
            and self._poller is None
            and time.monotonic() - self._asked_at >= self.dashboard.interval_s
        ):
            await self._tick()
        self._ensure_poller()
        assert self.snapshot is not None
        return self.snapshot

    async def next(self, after_tick: int, timeout_s: float) -> Snapshot | None:
        """The first snapshot newer than ``after_tick`` (None after ``timeout_s``)."""
        self._seen_at = time.monotonic()
        self._ensure_poller()
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: self.snapshot is not None and self.snapshot.tick > after_tick
                    ),
                    timeout_s,
                )
            except TimeoutError:
                return None
        return self.snapshot

    async def refresh(self) -> None:
        """Ask again now (after a decision: the next page must show it)."""
        self._asked_at = 0.0
        await self._tick()

    async def with_ledger(self) -> Snapshot:
        """The snapshot with the phase's ledger asked now (a page about a workstream whose
        entries the last ledger tick has not brought yet)."""
        snapshot = await self.current()
        if not snapshot.running:
            return snapshot
        async with self._lock:
            with contextlib.suppress(UserError):
                self._phase_ledger = await self.dashboard.query_ledger(self.run_id)
            self._ledger_at = time.monotonic()
            ledger, events = await self._compose(snapshot.record)
            if self.snapshot is not None:
                self.snapshot = replace(self.snapshot, ledger=ledger, events=events)
                snapshot = self.snapshot
        return snapshot

    def cached_fragments(self, kind: str, tick: int) -> Any:
        """The fragments a page was drawn with at ``tick``, while they are kept."""
        return self._fragments.get((kind, tick))

    def fragments(self, kind: str, snapshot: Snapshot, build: Any) -> Any:
        """``build(snapshot)``, once per page kind and tick however many streams want it."""
        key = (kind, snapshot.tick)
        if key not in self._fragments:
            if len(self._fragments) > 8:
                self._fragments.clear()
            self._fragments[key] = build(snapshot)
        return self._fragments[key]

    # -- the poller ---------------------------------------------------------------------------

    def _ensure_poller(self) -> None:
        running = self.snapshot is None or self.snapshot.running
        if running and (self._poller is None or self._poller.done()):
            self._poller = asyncio.create_task(self._poll(), name=f"uet-ui watch {self.run_id}")

    async def _poll(self) -> None:
        try:
            while time.monotonic() - self._seen_at < IDLE_S:
                wait = self.dashboard.interval_s - (time.monotonic() - self._asked_at)
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._tick()
                if self.snapshot is not None and not self.snapshot.running:
                    return  # a closed run does not change
        finally:
            self._poller = None

    async def _tick(self) -> None:
        async with self._lock:
            if (
                self.snapshot is not None
                and time.monotonic() - self._asked_at < self.dashboard.interval_s
            ):
                return  # someone else asked within this tick
            self._asked_at = time.monotonic()
            try:
                snapshot = await self._ask()
            except UserError as exc:
                if self.snapshot is None:
                    raise  # nothing to show: the page says why
                # The last known record stays on screen, saying why it is not fresh.
                snapshot = replace(self.snapshot, tick=self.snapshot.tick + 1, problem=exc.lines[0])
            self.snapshot = snapshot
        async with self._changed:
            self._changed.notify_all()

    async def _ask(self) -> Snapshot:
        d = self.dashboard
        tick = self.snapshot.tick + 1 if self.snapshot else 1
        plan = await d.plan(self.run_id)
        previous = self.snapshot
        if previous is not None and self._ledger_due():
            with contextlib.suppress(UserError):  # the next status tick says what is wrong
                self._phase_ledger = await d.query_ledger(self.run_id)
            self._ledger_at = time.monotonic()
            self._ledger_wanted = False
            ledger, events = await self._compose(previous.record)
            return replace(previous, tick=tick, at=datetime.now(UTC), ledger=ledger, events=events)
        record, running, note = await d.status(self.run_id, previous)
        if not running:
            final = await d.final(self.run_id)
            return Snapshot(
                run_id=self.run_id,
                record=final.record,
                running=False,
                plan=plan,
                tick=tick,
                at=datetime.now(UTC),
                ledger=final.ledger,
                events=final.events,
                observed=dict(self._observed),
                note=final.note,
            )
        assert record is not None
        self._observe(record)
        if previous is None or _moved(previous.record, record):
            self._ledger_wanted = True
        ledger, events = await self._compose(record)
        return Snapshot(
            run_id=self.run_id,
            record=record,
            running=True,
            plan=plan,
            tick=tick,
            at=datetime.now(UTC),
            ledger=ledger,
            events=events,
            observed={ws: dict(states) for ws, states in self._observed.items()},
            note=note,
        )

    def _ledger_due(self) -> bool:
        return self._ledger_wanted and time.monotonic() - self._ledger_at >= LEDGER_EVERY_S

    def _observe(self, record: RunRecord) -> None:
        now = datetime.now(UTC)
        for ws_id, state in record.workstreams.items():
            self._observed[ws_id].setdefault(str(state.status), now)

    async def _compose(self, record: RunRecord) -> tuple[list[LedgerEntry], list[RunEvent]]:
        """Journal parts (read again only when new ones appear) + the phase's live ledger."""
        shas = [ref.sha256 for ref in record.journal]
        if shas != self._journal:
            try:
                self._journal_view = await asyncio.to_thread(
                    compose, self.dashboard.store, record.journal
                )
                self._journal = shas
            except (ApplicationError, OSError, UserError):
                pass  # a store this host cannot read: the record alone is shown
        entries = {e.patch_id: e for e in self._journal_view[0]}
        for entry in self._phase_ledger:
            entries[entry.patch_id] = entry
        return list(entries.values()), self._journal_view[1]


def _moved(before: RunRecord, after: RunRecord) -> bool:
    if len(before.journal) != len(after.journal) or len(before.reviews) != len(after.reviews):
        return True
    return any(
        before.workstreams.get(ws_id) is None or before.workstreams[ws_id].status != s.status
        for ws_id, s in after.workstreams.items()
    )


@dataclass(frozen=True)
class Final:
    record: RunRecord
    ledger: list[LedgerEntry]
    events: list[RunEvent]
    note: str | None = None


@dataclass(frozen=True)
class RunListing:
    row: RunRow
    snapshot: Snapshot | None
    problem: str | None = None


class Dashboard:
    """The dashboard's data: one per server, given its client and settings (tests and benches
    pass their own)."""

    def __init__(
        self, client: Client, settings: Settings, *, interval_s: float = INTERVAL_S
    ) -> None:
        self.client = client
        self.settings = settings
        self.interval_s = interval_s
        self.watches: dict[str, RunWatch] = {}
        self.queries: defaultdict[str, int] = defaultdict(int)  # query name → how many
        self._store: ArtifactStore | None = None
        self._plans: dict[str, PlanInfo] = {}
        self._finals: dict[str, Final] = {}
        self._listing: dict[tuple[Any, ...], tuple[float, list[RunRow]]] = {}
        self._insights: tuple[float, Insights] | None = None

    @property
    def store(self) -> ArtifactStore:
        if self._store is None:
            try:
                self._store = open_artifact_store(self.settings.home)
            except ApplicationError as exc:
                raise UserError(exc.message) from None
        return self._store

    def watch(self, run_id: str) -> RunWatch:
        if run_id not in self.watches:
            self.watches[run_id] = RunWatch(self, run_id)
        return self.watches[run_id]

    async def close(self) -> None:
        for watch in self.watches.values():
            if watch._poller is not None:
                watch._poller.cancel()

    # -- Temporal: the one place that asks ----------------------------------------------------

    async def status(
        self, run_id: str, previous: Snapshot | None
    ) -> tuple[RunRecord | None, bool, str | None]:
        """(record, still running, note). A record saying the phase ended is believed once
        the workflow has closed too (it reports its end before close_run finishes)."""
        handle = phase_handle(self.client, run_id)
        if previous is None and not await self._running(run_id):
            return None, False, None
        self.queries["status"] += 1
        try:
            record = await asyncio.wait_for(handle.query(PhaseWorkflow.status), QUERY_TIMEOUT_S)
        except (TimeoutError, RPCError) as exc:
            if isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND:
                raise UserError(f"no run {run_id!r}") from None
            if not await self._running(run_id):
                return None, False, None
            raise UserError(
                f"no worker answers run {run_id}'s queries on task queue "
                f"{self.settings.task_queue!r}; start one with `uet worker` (showing what was "
                "last known)"
            ) from None
        if record.status in ENDED and not await self._running(run_id):
            return None, False, None
        return record, True, None

    async def query_ledger(self, run_id: str) -> list[LedgerEntry]:
        self.queries["ledger"] += 1
        handle = phase_handle(self.client, run_id)
        try:
            return await asyncio.wait_for(handle.query(PhaseWorkflow.ledger), QUERY_TIMEOUT_S)
        except (TimeoutError, RPCError):
            raise UserError(f"run {run_id}: its ledger cannot be asked now") from None

    async def _running(self, run_id: str) -> bool:
        self.queries["describe"] += 1
        try:
            description = await phase_handle(self.client, run_id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise UserError(f"no run {run_id!r}; the runs page lists them") from None
            raise UserError(f"run {run_id}: {exc.message}") from None
        return description.status == WorkflowExecutionStatus.RUNNING

    async def final(self, run_id: str) -> Final:
        """A closed run: its report folder when this host has it, else the workflow's result
        and the journal parts it wrote. Read once."""
        if run_id in self._finals:
            return self._finals[run_id]
        report = read_report(run_id, self.settings)
        rolled, note = await rollback_record(self.client, run_id)
        if report is not None:
            final = Final(rolled or report.record, report.ledger, report.events, note)
        else:
            self.queries["result"] += 1
            record = await final_record(phase_handle(self.client, run_id))
            try:
                ledger, events = await asyncio.to_thread(compose, self.store, record.journal)
            except (ApplicationError, OSError):
                ledger, events = [], []
            final = Final(rolled or record, ledger, events, note)
        if note is None:  # a rollback under way changes it yet
            self._finals[run_id] = final
        return final

    async def plan(self, run_id: str) -> PlanInfo:
        """Dependencies, titles and critical path, from the input of the run's first
        execution (continue-as-new keeps the workflow id; its first run holds the phase)."""
        if run_id in self._plans:
            return self._plans[run_id]
        info = await self._read_plan(run_id)
        self._plans[run_id] = info
        return info

    async def _read_plan(self, run_id: str) -> PlanInfo:
        self.queries["history"] += 1
        try:
            handle = self.client.get_workflow_handle(workflow_id(run_id))
            first = await _first_event(handle)
            started = first.workflow_execution_started_event_attributes
            if started.continued_execution_run_id and started.first_execution_run_id:
                handle = self.client.get_workflow_handle(
                    workflow_id(run_id), run_id=started.first_execution_run_id
                )
                first = await _first_event(handle)
                started = first.workflow_execution_started_event_attributes
            (run_input,) = await self.client.data_converter.decode(
                list(started.input.payloads), [RunInput]
            )
            assert isinstance(run_input, RunInput)
            spec = run_input.phase
            if spec is None and run_input.document:
                document = await asyncio.to_thread(
                    read_run_document, self.store, run_input.document
                )
                spec = document.phase
        except Exception as exc:  # an input of another version, a store out of reach: no DAG edges
            return PlanInfo(note=f"the plan is not known ({type(exc).__name__})")
        if spec is None:
            return PlanInfo(note="the plan is not known")
        plan = plan_phase(spec)
        return PlanInfo(
            dependencies={ws.workstream_id: list(ws.dependencies) for ws in spec.workstreams},
            titles={ws.workstream_id: ws.title for ws in spec.workstreams},
            critical_path=plan.critical_path,
            started_at=first.event_time.ToDatetime(tzinfo=UTC),
            allowed_reviewers=list(spec.allowed_reviewers),
        )

    async def running_workstream_ledger(self, run_id: str, ws_id: str) -> list[LedgerEntry]:
        """A running workstream's own entries (asked when its page is drawn, not per tick)."""
        from schemas.refs import child_workflow_id
        from workflows.workstream import WorkstreamWorkflow

        self.queries["workstream ledger"] += 1
        child = self.client.get_workflow_handle_for(
            WorkstreamWorkflow.run, child_workflow_id(workflow_id(run_id), ws_id)
        )
        try:
            return await asyncio.wait_for(child.query(WorkstreamWorkflow.ledger), 3)
        except (TimeoutError, RPCError):
            return []

    # -- lists ------------------------------------------------------------------------------

    async def runs(
        self, status: str | None = None, phase_id: str | None = None, limit: int = 50
    ) -> list[RunListing]:
        """The runs (visibility, read at most every 2 s), each with its snapshot."""
        key = (status, phase_id, limit)
        cached = self._listing.get(key)
        if cached is None or time.monotonic() - cached[0] > 2:
            self.queries["list"] += 1
            rows = await find_runs(self.client, self.settings.task_queue, status, phase_id, limit)
            self._listing[key] = cached = (time.monotonic(), rows)
        rows = cached[1]
        gate = asyncio.Semaphore(8)

        async def one(row: RunRow) -> RunListing:
            async with gate:
                try:
                    return RunListing(row, await self.watch(row.run_id).current())
                except UserError as exc:
                    return RunListing(row, None, exc.lines[0])

        return list(await asyncio.gather(*(one(row) for row in rows)))

    async def inbox(self) -> tuple[list[tuple[Snapshot, ReviewRequest]], list[str]]:
        """Every pending review of the runs that wait for one, and the runs that could not be
        asked."""
        listing = await self.runs(status=str(PhaseState.AWAITING_REVIEW), limit=200)
        found: list[tuple[Snapshot, ReviewRequest]] = []
        problems = []
        for item in listing:
            if item.snapshot is None:
                problems.append(f"{item.row.run_id}: {item.problem}")
                continue
            if item.snapshot.problem:
                problems.append(item.snapshot.problem)
            found += [(item.snapshot, request) for request in item.snapshot.pending]
        found.sort(key=lambda pair: pair[1].requested_at)
        return found, problems

    # -- the artifact store ---------------------------------------------------------------------

    async def read(self, ref: ArtifactRef, limit: int | None = None) -> str:
        """A blob as text (``limit``: at most its last that many bytes)."""

        def read() -> bytes:
            return self.store.read_bytes(ref)

        try:
            data = await asyncio.to_thread(read)
        except ApplicationError as exc:
            return f"(not available: {exc.message})"
        if limit is not None and len(data) > limit:
            data = data[-limit:]
        return data.decode("utf-8", "replace")

    # -- the telemetry database --------------------------------------------------------------

    async def insights(self, since_days: float = 30) -> Insights:
        if self._insights is not None and time.monotonic() - self._insights[0] < 30:
            return self._insights[1]
        found = await asyncio.to_thread(read_insights, self.settings.home, since_days)
        self._insights = (time.monotonic(), found)
        return found


async def _first_event(handle: Any) -> Any:
    async for event in handle.fetch_history_events(page_size=1):
        return event
    raise LookupError("empty history")


@dataclass(frozen=True)
class Insights:
    """What `uet insights --json` prints, and the executions per day behind it; ``empty``
    says why there is nothing."""

    data: dict[str, Any] = field(default_factory=dict)
    daily: list[dict[str, Any]] = field(default_factory=list)
    empty: str | None = None


def read_insights(home: Path, since_days: float) -> Insights:
    if learning_disabled():
        return Insights(empty="learning is off (UET_DISABLE_LEARNING is set): nothing is recorded")
    url = database_url(home)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return Insights(
            empty=f"no telemetry database yet ({parsed.database}): it appears with the "
            "first run a worker records"
        )
    store = Telemetry(url)
    try:
        if store.current() is None:
            return Insights(empty="the telemetry database has no schema yet (`uet db upgrade`)")
        after = analysis.since(since_days)
        with store.session() as session:
            data = analysis.insights(session, after)
            daily = _daily(session, after)
    except Exception as exc:  # unreachable, an older schema: one line, never a crash
        return Insights(empty=f"the telemetry database cannot be read ({type(exc).__name__})")
    finally:
        store.close()
    if not data["tools"] and not data["errors"] and not data["gates"]:
        return Insights(data=data, empty=f"nothing recorded in the last {since_days:g} days")
    return Insights(data=data, daily=daily)


def _daily(session: Any, after: datetime) -> list[dict[str, Any]]:
    """Tool runs per day: how many, how many succeeded, their cost and mean duration."""
    rows = session.execute(
        select(Execution.at, Execution.outcome, Execution.cost_usd, Execution.duration_s).where(
            Execution.kind == "tool", Execution.at >= after
        )
    ).all()
    days: dict[date, list[Any]] = defaultdict(list)
    for row in rows:
        days[row.at.date()].append(row)
    return [
        {
            "day": day.isoformat(),
            "runs": len(members),
            "success_rate": sum(m.outcome in analysis.SUCCESS for m in members) / len(members),
            "cost_usd": sum(m.cost_usd or 0.0 for m in members),
            "duration_mean_s": sum(m.duration_s for m in members) / len(members),
        }
        for day, members in sorted(days.items())
    ]


def workstream_entries(ledger: Iterable[LedgerEntry], ws_id: str) -> list[LedgerEntry]:
    return sorted((e for e in ledger if e.workstream_id == ws_id), key=lambda e: e.attempt)
