"""Tools and gates in the sandbox, end to end (real server, real bubblewrap): a tool cannot
reach the user's work tree through the alternates path, a gate without network cannot reach a
loopback server, a tool over its process limit fails with limit_pids, and legitimate work —
a shell tool, the fake AI CLIs, gates — passes as before."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import phase, run_input, run_phase, show
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.run import PhaseState, WorkstreamState

BWRAP = {"mode": "bwrap"}


async def test_a_sandboxed_tool_cannot_reach_the_users_work_tree(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"app.txt": "original\n"})
    walk_up = (
        'user="$(dirname "$(dirname "$(cat .git/objects/info/alternates)")")"; '
        'echo pwned > "$user/PWNED.txt" 2>/dev/null; ls "$user" > seen.txt 2>&1; '
        "echo mine > app.txt"
    )
    spec = phase(
        defaults={"review": "never", "workspace": {"sandbox": BWRAP}},
        workstreams=[{"workstream_id": "ws", "execution_request": {"command": walk_up}}],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, [
        (w, r.reason) for w, r in record.workstreams.items()
    ]
    assert not (repo / "PWNED.txt").exists()
    assert show(repo, record.head_sha or "", "app.txt") == "mine"
    # The user's work tree is not even visible: none of its files was listed (what the tool
    # wrote went to its own private directories).
    assert "app.txt" not in show(repo, record.head_sha or "", "seen.txt").split()


async def test_a_gate_without_network_cannot_reach_a_loopback_server(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connect = f"python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), 2)\""
    repo: Path = make_repo({"app.txt": "a\n"})
    try:
        spec = phase(
            defaults={"review": "never", "workspace": {"sandbox": BWRAP}},
            workstreams=[
                {
                    "workstream_id": "offline",
                    "execution_request": {"command": "echo x > x.txt"},
                    "acceptance_criteria": {"gates": [{"gate_id": "net", "command": connect}]},
                },
                {
                    "workstream_id": "online",
                    "execution_request": {"command": "echo y > y.txt"},
                    "acceptance_criteria": {
                        "gates": [
                            {
                                "gate_id": "net",
                                "command": connect,
                                "sandbox": {"mode": "bwrap", "network": True},
                            }
                        ]
                    },
                },
            ],
        )
        record = await run_phase(client, settings, run_input(spec, repo))
    finally:
        server.close()
    assert record.workstreams["offline"].status == WorkstreamState.FAILED
    assert "gate net" in (record.workstreams["offline"].reason or "")
    assert record.workstreams["online"].status == WorkstreamState.COMPLETED


async def test_a_fork_bomb_under_a_pids_limit_fails_with_limit_pids(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"app.txt": "a\n"})
    # Bounded (1,000 processes at most) so that a broken limit cannot take the host down.
    bomb = (
        'python3 -c "import os, time\nfor _ in range(1000):\n'
        '    if os.fork() == 0:\n        time.sleep(30); os._exit(0)\n"'
    )
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "bomb",
                "execution_request": {"command": bomb},
                "workspace": {"sandbox": {"mode": "bwrap", "limits": {"pids": 40}}},
            }
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    bomb_ws = record.workstreams["bomb"]
    assert bomb_ws.status == WorkstreamState.FAILED
    assert "went over its process limit (40 processes)" in (bomb_ws.reason or ""), bomb_ws.reason


async def test_the_fake_ai_tools_and_setup_work_in_the_sandbox(
    client: Client, settings: Settings, worker: Worker, make_repo, fake_tools: Path
) -> None:
    repo: Path = make_repo({"README.md": "hello\n"})
    spec = phase(
        defaults={
            "review": "never",
            "workspace": {
                "sandbox": BWRAP,
                "setup": ["mkdir -p .deps && echo dep > .deps/d"],
                "cache": [{"path": ".deps", "key": ["README.md"]}],
            },
            "acceptance_criteria": {"gates": [{"gate_id": "deps", "command": "test -f .deps/d"}]},
        },
        workstreams=[
            {
                "workstream_id": f"ws-{tool}",
                "execution_request": {"tool_id": tool, "prompt": f"WRITE {tool}.md: by {tool}"},
            }
            for tool in ("claude", "codex", "aider")
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, [
        (w, r.reason) for w, r in record.workstreams.items()
    ]


def test_auto_follows_the_worker_and_an_explicit_mode_wins(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pytest
    from temporalio.exceptions import ApplicationError

    from activities.lib.step_sandbox import resolved_mode, startup_note
    from schemas.sandbox import SandboxSpec

    monkeypatch.delenv("UET_SANDBOX", raising=False)
    assert resolved_mode(SandboxSpec()) == "bwrap" and startup_note() is None  # it runs here
    monkeypatch.setenv("UET_SANDBOX", "none")
    assert resolved_mode(SandboxSpec()) == "none"
    assert resolved_mode(SandboxSpec(mode="bwrap")) == "bwrap"  # the phase asked: never less
    monkeypatch.setenv("UET_SANDBOX", "docker")
    with pytest.raises(ApplicationError, match="UET_SANDBOX='docker'"):
        resolved_mode(SandboxSpec())


async def test_memory_limit_and_a_gate_reading_a_shared_cache_listed_in_readable(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    """A tool allocating past memory_mb fails with the limit named; a gate that needs a shared
    cache in the home (private in the sandbox) passes once the cache is listed in readable."""
    import shutil
    import uuid

    shared = Path.home() / ".cache" / f"uet-test-shared-{uuid.uuid4().hex[:8]}"
    shared.mkdir(parents=True)
    (shared / "wheel.txt").write_text("cached\n")
    repo: Path = make_repo({"app.txt": "a\n"})
    hog = 'python3 -c "x = bytearray(400 * 1024 * 1024); print(len(x))"'
    need = f"grep -q cached {shared}/wheel.txt"
    try:
        spec = phase(
            defaults={"review": "never"},
            workstreams=[
                {
                    "workstream_id": "hog",
                    "execution_request": {"command": hog},
                    "workspace": {"sandbox": {"mode": "bwrap", "limits": {"memory_mb": 64}}},
                },
                {
                    "workstream_id": "blind",
                    "execution_request": {"command": "echo b > b.txt"},
                    "workspace": {"sandbox": BWRAP},
                    "acceptance_criteria": {"gates": [{"gate_id": "cache", "command": need}]},
                },
                {
                    "workstream_id": "sees",
                    "execution_request": {"command": "echo s > s.txt"},
                    "workspace": {"sandbox": {"mode": "bwrap", "readable": [str(shared)]}},
                    "acceptance_criteria": {"gates": [{"gate_id": "cache", "command": need}]},
                },
            ],
        )
        record = await run_phase(client, settings, run_input(spec, repo))
    finally:
        shutil.rmtree(shared)
    hog_ws = record.workstreams["hog"]
    assert hog_ws.status == WorkstreamState.FAILED
    assert "went over its memory limit (64 MB)" in (hog_ws.reason or ""), hog_ws.reason
    assert record.workstreams["blind"].status == WorkstreamState.FAILED
    assert record.workstreams["sees"].status == WorkstreamState.COMPLETED


def _running(needle: str) -> bool:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if needle in cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                return True
        except OSError:
            continue
    return False


async def test_the_user_may_edit_their_work_tree_while_a_confined_tool_runs(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    """A confined tool cannot reach the user's work tree, so uet does not watch it: the user
    goes on working there meanwhile (unconfined, the same edits fail the workstream:
    tests/test_hostile_tools.py)."""
    repo: Path = make_repo({"app.txt": "original\n"})
    spec = phase(
        defaults={"review": "never", "workspace": {"sandbox": BWRAP}},
        workstreams=[
            {
                "workstream_id": "ws",
                "execution_request": {"command": "sleep 2.3457; echo mine > app.txt"},
            }
        ],
    )
    run = asyncio.create_task(run_phase(client, settings, run_input(spec, repo)))
    for _ in range(400):
        if _running("sleep 2.3457"):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the tool never started")
    (repo / "notes.txt").write_text("mine, meanwhile\n")
    (repo / "app.txt").write_text("edited by me\n")
    record = await run
    assert record.status == PhaseState.COMPLETED, [
        (w, r.reason) for w, r in record.workstreams.items()
    ]
    assert show(repo, record.head_sha or "", "app.txt") == "mine"
    assert (repo / "app.txt").read_text() == "edited by me\n"
