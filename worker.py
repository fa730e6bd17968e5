"""A uet worker: runs phase and workstream workflows and every activity.

    python worker.py        (or: uet worker)

Connection settings come from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / profiles; the state dir
(artifacts, checkouts) from UET_HOME, which every worker of a deployment must share. The
wiring is runtime/plugin.py.
"""

from __future__ import annotations

import asyncio

from runtime import logs
from runtime.plugin import serve
from runtime.settings import Settings


def main() -> None:
    logs.configure()
    asyncio.run(serve(Settings.from_env()))


if __name__ == "__main__":
    main()
