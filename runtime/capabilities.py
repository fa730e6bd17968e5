"""What a worker can run: the tools installed on its host, its toolchains and labels.

Tool runs go to one task queue per tool (``schemas.refs.tool_queue``) and a worker polls the
queues of the tools it has, so a host without ``claude`` never takes a claude workstream.
Everything else (workflows, git, gates) stays on the main queue, which every worker polls.

Temporal knows a worker only by the identity it polls with; ours carries the labels, so
``uet workers`` can tell them from the pollers alone
(``12345@build-3 [gpu,node,python] uet/3f2a9c01d4e5``: labels, then the code it runs).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from dataclasses import dataclass

from activities.lib.adapters import ADAPTERS
from runtime.errors import UserError

#: Label → programs any of which makes a host have it (shown by `uet workers`).
TOOLCHAINS: dict[str, tuple[str, ...]] = {
    "python": ("python3", "python"),
    "node": ("node",),
    "go": ("go",),
    "rust": ("cargo",),
    "java": ("java",),
    "ruby": ("ruby",),
    "docker": ("docker", "podman"),
}
_LABEL = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_IDENTITY = re.compile(r"^(?P<who>.*?)(?: \[(?P<labels>[^\]]*)\])?(?: uet/(?P<code>[0-9a-f]+))?$")


@dataclass(frozen=True)
class Capabilities:
    tools: tuple[str, ...]
    labels: tuple[str, ...]
    #: The first digits of the worker's code fingerprint: workers of one deployment must run
    #: the same workflow code, and `uet workers` shows one that does not.
    code: str = ""

    def identity(self) -> str:
        who = f"{os.getpid()}@{socket.gethostname()}"
        labels = f" [{','.join(self.labels)}]" if self.labels else ""
        code = f" uet/{self.code}" if self.code else ""
        return who + labels + code


def detect(environ: dict[str, str] | None = None) -> Capabilities:
    """The tools whose program is on PATH (shell and patch are built in), unless
    ``UET_WORKER_TOOLS`` says which; the toolchains found plus ``UET_WORKER_LABELS``."""
    env = os.environ if environ is None else environ
    path = env.get("PATH")
    declared = _names(env.get("UET_WORKER_TOOLS", ""))
    if declared:
        unknown = [t for t in declared if t not in ADAPTERS]
        if unknown:
            raise UserError(
                f"UET_WORKER_TOOLS names {', '.join(unknown)}, which uet has no adapter for; "
                f"pick from {', '.join(ADAPTERS)}"
            )
        tools = tuple(t for t in ADAPTERS if t in declared)
    else:
        tools = tuple(
            tool_id
            for tool_id, adapter in ADAPTERS.items()
            if adapter.program is None or shutil.which(adapter.program, path=path)
        )
    labels = _names(env.get("UET_WORKER_LABELS", ""))
    bad = [label for label in labels if not _LABEL.match(label)]
    if bad:
        raise UserError(
            f"UET_WORKER_LABELS: {', '.join(map(repr, bad))} is not a label; use lowercase "
            "letters, digits, '.', '_' and '-', separated by commas"
        )
    found = [
        label
        for label, programs in TOOLCHAINS.items()
        if any(shutil.which(p, path=path) for p in programs)
    ]
    from runtime.devserver import code_fingerprint

    return Capabilities(
        tools=tools, labels=tuple(sorted({*labels, *found})), code=code_fingerprint()[:12]
    )


def parse_identity(identity: str) -> tuple[str, tuple[str, ...], str]:
    """(who, labels, code) from a poller's identity; a worker not uet's has neither."""
    match = _IDENTITY.match(identity)
    assert match is not None  # the pattern matches any string
    labels = match.group("labels")
    return (
        match.group("who"),
        tuple(x for x in (labels or "").split(",") if x),
        match.group("code") or "",
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(x.strip().lower() for x in text.split(",") if x.strip()))
