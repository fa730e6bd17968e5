"""Where the CLI writes: people read stderr, scripts read stdout (``--json``: one document)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console

from runtime.connect import Target
from runtime.settings import Settings

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
    sys.stdout.flush()


def ui_link(settings: Settings, target: Target, wf_id: str) -> str:
    base = os.environ.get("UET_UI_URL") or f"http://localhost:{settings.ui_port}"
    return f"{base.rstrip('/')}/namespaces/{target.namespace}/workflows/{wf_id}"
