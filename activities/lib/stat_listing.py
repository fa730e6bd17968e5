"""Every path under a directory by its stat data — type, mode, size, mtime, ctime, inode —
the way git trusts its index: a write, an addition, a removal or a replacement changes it,
and ctime and inode are what no tool can set back. ``find`` stats a big tree (a
``node_modules``, a 20,000-file work tree) several times faster than a Python walk."""

from __future__ import annotations

import subprocess
from pathlib import Path

#: One record per path: its name (relative; "" for the root itself), then its stat data.
_FORMAT = "%P\\0%y%m %s %T@ %C@ %i\\0"


def stat_listing(root: Path, *, skip_git_dir: bool = False) -> tuple[dict[str, str], bool]:
    """Path → stat data of everything under ``root`` (``skip_git_dir``: not ``./.git/``), and
    whether all of it could be read (an unreadable directory leaves its part out)."""
    prune = ["-path", "./.git", "-type", "d", "-prune", "-o"] if skip_git_dir else []
    listed = subprocess.run(
        ["find", ".", *prune, "-printf", _FORMAT], cwd=root, capture_output=True, check=False
    )
    fields = listed.stdout.decode("utf-8", "surrogateescape").split("\0")
    return dict(zip(fields[0:-1:2], fields[1::2], strict=False)), listed.returncode == 0
