"""Free ports for a checkout's dev server or database: ``UET_PORT_0``, ``UET_PORT_1``, …

Each is a port the kernel says is free, held under a lock file in ``$UET_HOME/ports`` for as
long as the step runs, so two steps of this host never get the same one. The lock is an
``flock``: a killed worker's locks go with its process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

#: Tries before giving up (a port the kernel offers is nearly always free of our locks).
ATTEMPTS = 200


@contextlib.contextmanager
def leased_ports(home: Path, count: int) -> Iterator[list[int]]:
    """``count`` free ports, unique among the running steps of this state dir."""
    if count <= 0:
        yield []
        return
    folder = home / "ports"
    folder.mkdir(parents=True, exist_ok=True)
    held: list[tuple[int, int]] = []  # (port, fd)
    try:
        for _ in range(ATTEMPTS):
            if len(held) == count:
                break
            port = _free_port()
            if any(port == p for p, _fd in held):
                continue
            fd = os.open(folder / f"{port}.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # another step holds it
                os.close(fd)
                continue
            held.append((port, fd))
        if len(held) < count:
            raise RuntimeError(f"could not find {count} free ports in {ATTEMPTS} tries")
        yield [port for port, _fd in held]
    finally:
        for _port, fd in held:
            os.close(fd)  # closing releases the flock


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_env(ports: list[int]) -> dict[str, str]:
    return {f"UET_PORT_{n}": str(port) for n, port in enumerate(ports)}
