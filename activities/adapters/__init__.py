"""Tool adapters: each knows how to make one tool change files in a checkout.

An adapter gets a prepared checkout and returns how the tool ended; capturing the change as a
patch is the same for every tool and lives in activities/tools.py.
"""

from __future__ import annotations

from activities.adapters.aider import AiderAdapter
from activities.adapters.base import Adapter, ToolContext, ToolEnd
from activities.adapters.claude import ClaudeAdapter
from activities.adapters.codex import CodexAdapter
from activities.adapters.patch import PatchAdapter
from activities.adapters.shell import ShellAdapter

ADAPTERS: dict[str, Adapter] = {
    "shell": ShellAdapter(),
    "patch": PatchAdapter(),
    "aider": AiderAdapter(),
    "claude": ClaudeAdapter(),
    "codex": CodexAdapter(),
}

__all__ = ["ADAPTERS", "Adapter", "ToolContext", "ToolEnd"]
