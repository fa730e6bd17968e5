"""The OS sandbox a tool, gate or setup command runs in (``sandbox:`` in a spec).

``mode: bwrap`` runs the command under bubblewrap: its checkout read-write, the repository's
object store read-only, a private home and ``/tmp``, the rest of the file system read-only, and
uet's state dir, the other checkouts and the user's work tree not visible at all.
``mode: none`` runs it as the worker's user, unconfined; ``limits`` hold in both modes.
"""

from __future__ import annotations

import posixpath
from typing import Literal

from pydantic import Field, field_validator

from schemas.base import Model

SandboxMode = Literal["auto", "bwrap", "none"]
#: Which limit a process went over (its reason code is ``limit_<name>``).
LimitName = Literal["memory", "pids", "cpu", "file_size"]


def check_sandbox_path(value: str) -> str:
    """An absolute path or ``~/…`` (the worker's home), normalised; no ``..``."""
    if "\0" in value:
        raise ValueError("a path may not contain NUL")
    if value.rstrip("/") == "~":
        raise ValueError("the home is private: name the directories in it, e.g. ~/.cache/pip")
    if not (value.startswith("/") or value.startswith("~/")):
        raise ValueError(f"{value!r}: give an absolute path or one starting with ~/")
    if ".." in value.split("/"):
        raise ValueError(f"{value!r}: '..' is not allowed")
    normal = posixpath.normpath(value)
    if normal in ("/", "//"):
        raise ValueError("the whole file system cannot be listed: name the directories")
    return normal


class SandboxLimits(Model):
    """Resource limits of one process tree; a process over one fails with ``limit_<name>``."""

    memory_mb: float | None = Field(
        default=None,
        gt=0,
        description="memory of the whole tree (a cgroup; RLIMIT_AS per process where no cgroup "
        "controller is writable)",
    )
    pids: int | None = Field(
        default=None,
        gt=0,
        description="processes and threads of the whole tree at once (a cgroup; RLIMIT_NPROC "
        "where none is writable, which does not hold for root)",
    )
    cpu_s: float | None = Field(
        default=None, gt=0, description="CPU seconds of each process (RLIMIT_CPU)"
    )
    file_mb: float | None = Field(
        default=None, gt=0, description="largest file a process may write (RLIMIT_FSIZE)"
    )

    def any(self) -> bool:
        return any(v is not None for v in (self.memory_mb, self.pids, self.cpu_s, self.file_mb))


class SandboxSpec(Model):
    """Where a command may read, write and connect to, and how much it may use."""

    mode: SandboxMode = Field(
        default="auto",
        description="auto: the worker's UET_SANDBOX, else bwrap where bubblewrap can run (the "
        "worker says at start when it cannot); bwrap: bubblewrap (fails, never runs "
        "unsandboxed, where it cannot run); none: no sandbox",
    )
    network: bool | None = Field(
        default=None,
        description="network access; unset: on for AI tools and setup, off for shell, patch "
        "and gates",
    )
    writable: list[str] = Field(
        default_factory=list,
        description="more paths the command may write (absolute or ~/…), e.g. a shared cache",
    )
    readable: list[str] = Field(
        default_factory=list,
        description="paths in the worker's home (private otherwise) or elsewhere it may read, "
        "absolute or ~/…, e.g. ~/.cache/pip; the rest of the file system is readable already",
    )
    limits: SandboxLimits = Field(default_factory=SandboxLimits)

    @field_validator("writable", "readable")
    @classmethod
    def _paths(cls, value: list[str]) -> list[str]:
        return [check_sandbox_path(p) for p in value]
