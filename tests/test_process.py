"""Commands run by tools and gates: process groups die on timeout and cancellation, output is
bounded, and a missing program is recognised."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from activities.lib.process import run_process


async def _run(tmp_path: Path, command: str | list[str], timeout_s: float = 10, **kw):  # type: ignore[no-untyped-def]
    return await run_process(
        command,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
        timeout_s=timeout_s,
        log_path=tmp_path / "log",
        **kw,
    )


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild-survived"
    # The shell forks a background grandchild that would write the marker after 1.5 s.
    started = time.monotonic()
    result = await _run(tmp_path, f"(sleep 1.5; touch {marker}) & sleep 30", timeout_s=0.5)
    assert result.timed_out and result.exit_code is None
    assert time.monotonic() - started < 10
    await asyncio.sleep(2)
    assert not marker.exists(), "the grandchild outlived the timeout"


async def test_cancellation_kills_the_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    task = asyncio.create_task(_run(tmp_path, f"sleep 1.5 && touch {marker}", timeout_s=60))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(2)
    assert not marker.exists()


async def test_background_child_does_not_hang_the_capture(tmp_path: Path) -> None:
    # The leader exits at once; a daemonised child keeps stdout open. We must not wait for it.
    started = time.monotonic()
    result = await _run(tmp_path, "sleep 30 & echo done")
    assert result.exit_code == 0 and "done" in result.tail
    assert time.monotonic() - started < 10


async def test_output_is_bounded_and_the_tail_kept(tmp_path: Path) -> None:
    result = await _run(
        tmp_path, "head -c 300000 /dev/zero | tr '\\0' x; echo; echo THE-END", log_limit=100_000
    )
    log = (tmp_path / "log").read_bytes()
    assert len(log) < 100_200 and log.endswith(b"[uet: output truncated after 100000 bytes]\n")
    assert result.tail.rstrip().endswith("THE-END")


async def test_invalid_utf8_output_is_replaced_not_fatal(tmp_path: Path) -> None:
    result = await _run(tmp_path, "printf 'bad \\377\\376 bytes\\n'")
    assert result.exit_code == 0 and "bad \ufffd\ufffd bytes" in result.tail


async def test_missing_programs(tmp_path: Path) -> None:
    argv = await _run(tmp_path, ["uet-no-such-program"])
    assert argv.not_found and argv.exit_code is None
    shell = await _run(tmp_path, "uet-no-such-program --flag")
    assert shell.not_found and shell.exit_code == 127


async def test_a_child_that_left_the_process_group_cannot_hang_us(tmp_path: Path) -> None:
    started = time.monotonic()
    result = await _run(tmp_path, "setsid sleep 30 & echo escaped")
    assert result.exit_code == 0 and "escaped" in result.tail
    assert time.monotonic() - started < 10


async def test_a_process_is_watched_without_a_thread_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python 3.11's asyncio starts a thread per child to learn when it ends, and the loop
    waits for each to start; uet's git and tool processes are watched by pidfd instead (as
    3.12 does), from the loop of the main thread or of any other, and exit codes still
    arrive."""
    import threading

    from activities.lib.git import run_git

    started: list[str] = []
    start = threading.Thread.start

    def counted(self: threading.Thread) -> None:
        if self.name.startswith("asyncio-waitpid"):  # 3.11's ThreadedChildWatcher names them
            started.append(self.name)
        start(self)

    monkeypatch.setattr(threading.Thread, "start", counted)
    results = [await _run(tmp_path, f"exit {code}") for code in (0, 3)]
    assert [r.exit_code for r in results] == [0, 3]
    assert (await run_git("--version", cwd=tmp_path)).returncode == 0
    assert started == []  # no watcher thread for any of the three

    def elsewhere() -> int | None:
        async def run() -> int | None:
            return (await _run(tmp_path, "exit 5")).exit_code

        return asyncio.run(run())

    monkeypatch.setattr(threading.Thread, "start", start)
    assert await asyncio.to_thread(elsewhere) == 5  # a loop in another thread
