"""What a person sees while a run goes on: one line per workstream state change."""

from __future__ import annotations

from rich.console import Console

from schemas.run import RunStatus, WorkstreamState

STYLE = {
    WorkstreamState.PENDING: "dim",
    WorkstreamState.RUNNING: "cyan",
    WorkstreamState.COMPLETED: "green",
    WorkstreamState.FAILED: "bold red",
    WorkstreamState.BLOCKED: "yellow",
}


class ProgressPrinter:
    def __init__(self, console: Console) -> None:
        self.console = console
        self._seen: dict[str, WorkstreamState] = {}
        self._wave = 0

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


def _headline(reason: str) -> str:
    """What failed and the last line of its output (usually the error itself)."""
    lines = [line for line in reason.splitlines() if line.strip()]
    if len(lines) == 1:
        return lines[0][:200]
    return f"{lines[0][:120]}: {lines[-1].strip()[:160]}"
