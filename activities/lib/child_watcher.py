"""How asyncio learns that a process uet started has ended: a pidfd in the event loop, not a
thread per process.

Python 3.11's asyncio watches each child with a new thread (``ThreadedChildWatcher``), and
the event loop waits for that thread to start before it goes on: ~1.3 ms per process on a
quiet 2-core worker, several times that while workflow tasks hold the interpreter — and a
workstream starts five processes or more (git's reset, clean, add and diff, the tool). Python
3.12 watches children with a pidfd where Linux has them (5.3 on); this is that watcher for
3.11, where asyncio still lets one be set. It reads the pidfd in whichever loop started the
process, so a loop in another thread works too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVarTuple, Unpack

_installed = False
_Ts = TypeVarTuple("_Ts")


def ensure() -> None:
    """From now on, asyncio watches this process's children by pidfd (a no-op where Python
    does so already, or where the OS has no pidfds)."""
    global _installed
    if _installed:
        return
    _installed = True
    if sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open") or not _pidfds_work():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.get_event_loop_policy().set_child_watcher(PidfdChildWatcher())


def _pidfds_work() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3, or a seccomp filter that refuses it
        return False
    return True


if sys.version_info < (3, 12):  # gone from asyncio in 3.14, where pidfds are the rule

    class PidfdChildWatcher(asyncio.AbstractChildWatcher):
        """Python 3.12's watcher: the pidfd of each child read by the loop that started it."""

        def add_child_handler(
            self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: *_Ts
        ) -> None:
            loop = asyncio.get_running_loop()
            pidfd = os.pidfd_open(pid)
            loop._add_reader(pidfd, self._do_wait, pid, pidfd, callback, args)  # type: ignore[attr-defined]

        def _do_wait(
            self, pid: int, pidfd: int, callback: Callable[..., Any], args: tuple[Any, ...]
        ) -> None:
            asyncio.get_running_loop()._remove_reader(pidfd)  # type: ignore[attr-defined]
            try:
                _, status = os.waitpid(pid, 0)
            except ChildProcessError:  # reaped by someone else: its status is gone, as in 3.12
                returncode = 255
            else:
                returncode = os.waitstatus_to_exitcode(status)
            os.close(pidfd)
            callback(pid, returncode, *args)

        def remove_child_handler(self, pid: int) -> bool:
            return True  # asyncio never calls it (as 3.12's says)

        def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
            pass  # no loop of its own: each child's is the one that started it

        def close(self) -> None:
            pass

        def is_active(self) -> bool:
            return True

        def __enter__(self) -> PidfdChildWatcher:
            return self

        def __exit__(self, *exc_info: object) -> None:
            pass
