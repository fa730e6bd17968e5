"""structlog for everything: human-readable on a terminal, JSON with ``--log-format json``.

Temporal's ``workflow.logger`` and ``activity.logger`` are stdlib loggers that already skip
replayed lines and attach workflow/activity info; routing stdlib through structlog's formatter
gives one format for uet's own events and the SDK's.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
import temporalio.activity
import temporalio.workflow

from activities.lib.redact import redact, secret_values


def _temporal_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    # The SDK puts its context under these keys (see temporalio.workflow.LoggerAdapter).
    for key in ("temporal_workflow", "temporal_activity"):
        info = event.pop(key, None)
        if isinstance(info, dict):
            for name in ("workflow_id", "workflow_type", "activity_type", "attempt"):
                if name in info:
                    event.setdefault(name, info[name])
    return event


def _mask_secrets(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Values of secret-looking environment variables never reach a log line."""
    secrets = secret_values()
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value, secrets)
    return event


def configure(fmt: str = "console", level: str = "INFO") -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _temporal_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _mask_secrets,
    ]
    terminal = sys.stderr.isatty()
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=terminal,
            # Never local variables: they hold payloads, environments and so secrets. And a
            # log file gets plain text, not boxes.
            exception_formatter=structlog.dev.RichTracebackFormatter(show_locals=False)
            if terminal
            else structlog.dev.plain_traceback,
        )
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The SDK appends its context dict to every message; _temporal_context lifts the useful
    # fields into the event instead.
    temporalio.workflow.logger.workflow_info_on_message = False
    temporalio.activity.logger.activity_info_on_message = False
