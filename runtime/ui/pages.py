"""The templates (runtime/ui/templates): one Jinja environment for the dashboard's pages, their
live fragments and ``uet report``.

Autoescape is on for every template, and every value a template prints passes ``finalize``,
which masks secrets first — so a value is masked and escaped even where a template forgets.
Markup made by render.py is already both, and templates never mark run data ``|safe``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from runtime.cli.runs import where
from runtime.ui import render

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


@dataclass(frozen=True)
class Links:
    """Where things link: the dashboard's routes, or anchors inside one report file."""

    report: bool = False

    def run(self, run_id: str) -> str:
        return "#top" if self.report else f"/runs/{quote(run_id)}"

    def ws(self, run_id: str, ws_id: str) -> str:
        if self.report:
            return f"#ws-{ws_id}"
        return f"/runs/{quote(run_id)}/ws/{quote(ws_id)}"

    def artifact(self, run_id: str, sha256: str) -> str | None:
        return None if self.report else f"/runs/{quote(run_id)}/artifacts/{quote(sha256)}"

    def for_run(self, run_id: str) -> render.Link:
        return lambda ws_id: self.ws(run_id, ws_id)


def _finalize(value: Any) -> Any:
    if isinstance(value, Markup) or not isinstance(value, str):
        return "" if value is None else value
    return render.mask(value)


def _when(moment: datetime | None) -> str:
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S}" if moment else "-"


def _short(text: str | None, length: int = 120) -> str:
    text = text or ""
    return text if len(text) <= length else text[: length - 1] + "…"


def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        finalize=_finalize,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(
        badge=render.badge,
        money=render.money,
        when=_when,
        short=_short,
        tail=render.tail,
        progress_bar=render.progress_bar,
        cost_bar=render.cost_bar,
        where=where,
    )
    return env


ENV = environment()


def render_fragment(name: str, **context: Any) -> str:
    return ENV.get_template(name).render(**context)
