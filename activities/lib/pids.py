"""Whether a process still exists, asked the one way (for scratch owners, cgroups and the
embedded server alike)."""

from __future__ import annotations

import os


def pid_exists(pid: int) -> bool:
    """A process with ``pid`` exists (someone else's included; a zombie still counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True
