"""What a person sees while a run goes on: one line per workstream state change."""

from __future__ import annotations

from rich.console import Console

from schemas.review import ReviewRequest
from schemas.run import RunStatus, WorkstreamState

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


class ProgressPrinter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen: dict[str, WorkstreamState] = {}
        self._wave = 0
        self._reviews: set[str] = set()

    def update(self, status: RunStatus) -> None:
        if status.current_wave != self._wave and status.current_wave:
            self._wave = status.current_wave
            members = status.waves[self._wave - 1] if self._wave <= len(status.waves) else []
            self.console.print(
                f"[bold]wave {self._wave}/{len(status.waves)}[/]: {', '.join(members)}"
            )
        width = max((len(w) for w in status.workstreams), default=0)
        for ws_id, entry in status.workstreams.items():
            if self._seen.get(ws_id) == entry.status:
                continue
            first = ws_id not in self._seen
            self._seen[ws_id] = entry.status
            if first and entry.status == WorkstreamState.PENDING:
                continue
            detail = ""
            if entry.commit and entry.status == WorkstreamState.COMPLETED:
                detail = f" {entry.commit[:10]}"
            if entry.reason and entry.status in (WorkstreamState.FAILED, WorkstreamState.BLOCKED):
                detail = f" — {_headline(entry.reason)}"
            self.console.print(
                f"  {ws_id:<{width}}  [{STYLE[entry.status]}]{entry.status:<9}[/]{detail}",
                highlight=False,
            )
        self._show_reviews(status)

    def _show_reviews(self, status: RunStatus) -> None:
        """A waiting run says what it waits for and the exact commands that answer."""
        for record in status.reviews:
            request = record.request
            if record.decision is not None or record.abandoned:
                continue
            if request.review_id in self._reviews:
                continue
            self._reviews.add(request.review_id)
            self.console.print(
                f"[bold yellow]review needed[/] for {request.workstream_id} ({request.reason}): "
                f"{_headline(request.summary)}"
            )
            self.console.print(f"  uet show {status.run_id} {request.workstream_id}",
                               markup=False)  # fmt: skip
            for line in answer_commands(request):
                self.console.print(f"  {line}", markup=False)


def _headline(reason: str) -> str:
    """What failed and the last line of its output (usually the error itself)."""
    lines = [line for line in reason.splitlines() if line.strip()]
    if len(lines) == 1:
        return lines[0][:200]
    return f"{lines[0][:120]}: {lines[-1].strip()[:160]}"


def answer_commands(request: ReviewRequest) -> list[str]:
    """The exact commands that answer a review."""
    return [
        f"uet {d} {request.run_id} {request.workstream_id}"
        + (' --instructions "…"' if d == "adjust" else "")
        for d in request.allowed
    ]
