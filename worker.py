"""A uet worker: runs phase and workstream workflows and every activity.

    python worker.py        (or: uet worker)

Connection settings come from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / profiles; the state dir
(checkouts, mirrors, caches) from UET_HOME, which is this worker's own: artifacts go to the
configured store (PostgreSQL for a team), repositories are given by URL. The tools it offers:
those on its PATH, or UET_WORKER_TOOLS. The
wiring is runtime/plugin.py.
"""

from __future__ import annotations

import asyncio
import sys

from runtime import logs
from runtime.errors import UserError
from runtime.plugin import serve
from runtime.settings import Settings


def main() -> None:
    logs.configure()
    try:
        asyncio.run(serve(Settings.from_env()))
    except UserError as error:  # a setting the operator got wrong: one line, not a traceback
        for line in error.lines:
            print(f"uet worker: {line}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None


if __name__ == "__main__":
    main()
