"""Tool adapters: each knows how to make one tool change files in a checkout.

An adapter gets a prepared checkout and returns how the tool ended; capturing the change as a
patch is the same for every tool and lives in activities/tools.py.
"""

from __future__ import annotations

from activities.lib.adapters.aider import AiderAdapter
from activities.lib.adapters.base import Adapter, ToolContext, ToolEnd
from activities.lib.adapters.claude import ClaudeAdapter
from activities.lib.adapters.codex import CodexAdapter
from activities.lib.adapters.patch import PatchAdapter
from activities.lib.adapters.shell import ShellAdapter

ADAPTERS: dict[str, Adapter] = {
    "shell": ShellAdapter(),
    "patch": PatchAdapter(),
    "aider": AiderAdapter(),
    "claude": ClaudeAdapter(),
    "codex": CodexAdapter(),
}

__all__ = ["ADAPTERS", "Adapter", "ToolContext", "ToolEnd"]
