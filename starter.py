"""The ``uet`` command line (its commands: runtime/cli/).

Exit codes: 0 completed, 1 failed, 2 invalid input, 3 Temporal unreachable or not started,
130 interrupted.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

from runtime.cli import main, parser

__all__ = ["cli", "main", "parser"]


def cli() -> NoReturn:
    """The console entry point. Exits without interpreter finalization: the Temporal client's
    native threads may still be winding down, and tearing Python down under them can abort
    the process after the work is done (seen with `uet run --detach`)."""
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    cli()
