"""A workflow that does inside the sandbox what rich does when it renders a traceback there:
import pygments lazily (tests/test_first_hour.py). Its own module: the sandbox re-imports it."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn
class LogsAnError:
    @workflow.run
    async def run(self) -> str:
        import pygments.lexers.python  # noqa: F401

        return "ok"
