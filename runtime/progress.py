"""What a person sees while a run goes on, and what ``uet status`` shows of it.

The printer is fed snapshots (the ``status`` query, every half second or so) and the events of
the workstreams that are running. A fast run can move several waves between two snapshots, so
it does not print "the current wave": it prints each wave's header before that wave's
workstreams, in wave order. Eager runs have no waves to speak of: each integration is a
*step*, shown on the workstream it merged.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from schemas.events import NOTEWORTHY, RunEvent
from schemas.review import ReviewRecord, ReviewRequest
from schemas.run import PhaseState, RunRecord, WorkstreamState, WorkstreamStatus

STYLE = {
    WorkstreamState.PENDING: "dim",
    WorkstreamState.RUNNING: "cyan",
    WorkstreamState.COMPLETED: "green",
    WorkstreamState.FAILED: "bold red",
    WorkstreamState.BLOCKED: "yellow",
    WorkstreamState.AWAITING_REVIEW: "bold yellow",
    WorkstreamState.DROPPED: "yellow",
    WorkstreamState.ROLLED_BACK: "magenta",
}


def is_eager(status: RunRecord) -> bool:
    # Records from before `scheduling` was kept: eager steps outnumber the plan's waves.
    return status.scheduling == "eager" or status.current_wave > len(status.waves)


class ProgressPrinter:
    """Prints what changed since the previous snapshot. ``everything``: also the workstreams
    that are still pending (``uet status``)."""

    def __init__(self, console: Console, *, everything: bool = False) -> None:
        self.console = console
        self.everything = everything
        #: What was last shown of each workstream: its state, and what it waits for.
        self._seen: dict[str, tuple[WorkstreamState, str | None]] = {}
        self._header = 0  # waves: the last wave whose header is printed
        self._events: set[str] = set()
        self._asked: set[str] = set()
        self._decided: set[str] = set()
        self._phase_gates: set[str] = set()
        self._width = 0

    def update(self, status: RunRecord, events: Iterable[RunEvent] = ()) -> None:
        """``events``: what the phase and its running workstreams report (noteworthy ones are
        printed once each, on their workstream)."""
        self._width = max((len(w) for w in status.workstreams), default=0)
        self._news: dict[str | None, list[RunEvent]] = {}
        for event in sorted(events, key=lambda e: e.event_id):
            if event.type in NOTEWORTHY and event.event_id not in self._events:
                self._events.add(event.event_id)
                self._news.setdefault(event.workstream_id, []).append(event)
        eager = is_eager(status)
        changed = [
            ws_id
            for ws_id, entry in status.workstreams.items()
            if self._seen.get(ws_id) != _shown(entry) and not (eager and _unmerged(entry))
        ]
        if eager:
            for ws_id in changed:
                self._change(ws_id, status.workstreams[ws_id], eager=True)
        else:
            self._by_wave(status, changed)
        for owner in list(self._news):  # still running: only its news
            if owner is not None:
                self._print_news(owner)
        for event in self._news.pop(None, []):
            self.console.print(f"  [dim]·[/] {headline(event.message)}", highlight=False)
        self._print_phase_gates(status)
        self._print_reviews(status)

    # -- workstreams ---------------------------------------------------------------------------

    def _by_wave(self, status: RunRecord, changed: list[str]) -> None:
        waves = status.waves
        # Headers up to the wave that runs now (for `uet status`: all of them). A workstream
        # blocked in a later wave is shown when it is blocked, without that wave's header.
        last = len(waves) if self.everything else min(status.current_wave, len(waves))
        for number in range(1, last + 1):
            members = [w for w in changed if status.workstreams[w].wave == number]
            if number > self._header:
                self._header = number
                self.console.print(
                    f"[bold]wave {number}/{len(waves)}[/]: {', '.join(waves[number - 1])}"
                )
            for ws_id in members:
                self._change(ws_id, status.workstreams[ws_id], eager=False)
        for ws_id in changed:  # before the plan (wave 0), or in a wave not reached yet
            if self._seen.get(ws_id) != _shown(status.workstreams[ws_id]):
                self._change(ws_id, status.workstreams[ws_id], eager=False)

    def _shows(self, entry: WorkstreamStatus) -> bool:
        return self.everything or entry.status != WorkstreamState.PENDING

    def _change(self, ws_id: str, entry: WorkstreamStatus, *, eager: bool) -> None:
        first = ws_id not in self._seen
        self._seen[ws_id] = _shown(entry)
        if first and not self._shows(entry):
            return
        running = entry.status == WorkstreamState.RUNNING
        if not running:  # what led to this state comes first
            self._print_news(ws_id)
        detail = ""
        if entry.commit and entry.status == WorkstreamState.COMPLETED:
            detail = f" {entry.commit[:10]}"
            if eager and entry.step:
                detail += f"  step {entry.step}"
        elif entry.status == WorkstreamState.COMPLETED:
            detail = "  (no change)"
        elif running and entry.waiting:
            detail = f" — {entry.waiting}"
        if entry.reason and entry.status in (
            WorkstreamState.FAILED,
            WorkstreamState.BLOCKED,
            WorkstreamState.DROPPED,
            WorkstreamState.ROLLED_BACK,
        ):
            # "rolled back: …" on a rolled_back line says it twice.
            said = entry.status.replace("_", " ") + ": "
            detail = f" — {headline(entry.reason.removeprefix(said))}"
        if entry.cost_usd:
            detail += f"  ${entry.cost_usd:.4f}"
        self.console.print(
            f"  {ws_id:<{self._width}}  [{STYLE[entry.status]}]{entry.status:<9}[/]{detail}",
            highlight=False,
        )
        if running:
            self._print_news(ws_id)

    def _print_news(self, ws_id: str) -> None:
        for event in self._news.pop(ws_id, []):
            message = event.message.removeprefix(f"{ws_id}: ")
            self.console.print(
                f"  {ws_id:<{self._width}}  [dim]·[/] {headline(message)}", highlight=False
            )

    def _print_phase_gates(self, status: RunRecord) -> None:
        for gate in status.phase_gates:
            if gate.status in ("passed", "skipped"):
                continue
            key = f"{gate.gate_id}:{gate.log.sha256 if gate.log else gate.reason}"
            if key in self._phase_gates:
                continue
            self._phase_gates.add(key)
            self.console.print(
                f"  [bold red]phase gate {gate.gate_id} {gate.status}[/]"
                + (f" ({gate.reason})" if gate.reason else ""),
                highlight=False,
            )

    # -- reviews -------------------------------------------------------------------------------

    def _print_reviews(self, status: RunRecord) -> None:
        """A waiting run says what it waits for, for how long, and the exact commands that
        answer; a decision says who took it."""
        live = status.status in (PhaseState.RUNNING, PhaseState.AWAITING_REVIEW)
        for record in status.reviews:
            review_id = record.request.review_id
            if record.decision is not None:
                if review_id not in self._decided and (review_id in self._asked or live):
                    self._decided.add(review_id)
                    self.console.print(decided_line(record), highlight=False)
                continue
            if record.abandoned or not live or review_id in self._asked:
                continue
            self._asked.add(review_id)
            self.console.print(review_panel(record.request), soft_wrap=False)


def _unmerged(entry: WorkstreamStatus) -> bool:
    """Eager: done but not integrated yet. It is shown once integrated, with its step."""
    return entry.status == WorkstreamState.COMPLETED and bool(entry.commit) and not entry.step


def review_panel(request: ReviewRequest) -> Panel:
    lines = Text()
    lines.append(headline(request.summary) + "\n")
    lines.append(waits_for(request) + "\n", style="bold")
    lines.append(f"uet show {request.run_id} {request.workstream_id}\n", style="cyan")
    for command in answer_commands(request):
        lines.append(command + "\n", style="cyan")
    lines.append("(from another terminal; `uet reviews` lists every pending review)", style="dim")
    return Panel(
        lines,
        title=f"review needed: {request.workstream_id} ({request.reason})",
        title_align="left",
        border_style="yellow",
        expand=False,
    )


def waits_for(request: ReviewRequest) -> str:
    if request.timeout_at is None:
        return "the run waits for a decision, without a time limit (review_timeout_s)"
    local = request.timeout_at.astimezone()
    return f"the run waits for a decision until {local:%Y-%m-%d %H:%M:%S %Z} (review_timeout_s)"


def decided_line(record: ReviewRecord) -> str:
    decision = record.decision
    assert decision is not None
    how = " (timed out)" if record.timed_out else ""
    comment = f": {decision.comment}" if decision.comment else ""
    return (
        f"  review of {record.request.workstream_id}: {decision.decision}{how} by "
        f"{decision.reviewer}{comment}"
    )


def _shown(entry: WorkstreamStatus) -> tuple[WorkstreamState, str | None]:
    return entry.status, entry.waiting


def headline(reason: str) -> str:
    """What failed and the last line of its output (usually the error itself)."""
    lines = [line for line in reason.splitlines() if line.strip()]
    if not lines:
        return ""
    if len(lines) == 1:
        return lines[0][:200]
    return f"{lines[0][:120]}: {lines[-1].strip()[:160]}"


def answer_commands(request: ReviewRequest) -> list[str]:
    """The exact commands that answer a review."""
    budget = request.reason == "budget_exceeded"
    extra = {"adjust": ' --instructions "…"', "approve": " --budget-increase USD" if budget else ""}
    return [
        f"uet {d} {request.run_id} {request.workstream_id}{extra.get(d, '')}"
        for d in request.allowed
    ]
