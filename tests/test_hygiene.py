"""Secrets never leave the environment; payloads carry references, never blobs."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from helpers import phase, run_input, run_phase, show
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.testing import WorkflowEnvironment

import activities.patches as patches_module
from activities.lib.state_dir import StateDir
from activities.patches import PatchActivities
from runtime.converter import DATA_CONVERTER
from runtime.plugin import build_worker
from runtime.settings import Settings
from schemas.patch import ValidatePatchInput
from schemas.run import PhaseState
from schemas.spec import FileScope, PatchPolicy

SECRET = "sk-test-0123456789abcdefSECRET"


async def test_secrets_printed_by_tools_and_gates_are_masked_everywhere(
    client: Client, settings: Settings, make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_TEST_API_KEY", SECRET)  # in the worker's environment
    repo: Path = make_repo({"a.txt": "a\n"})
    spec = phase(
        defaults={"review": "never", "resilience_policy": {"max_fix_attempts": 0}},
        workstreams=[
            {
                "workstream_id": "ws-tool",
                "execution_request": {
                    "command": 'echo "my key is $UET_TEST_API_KEY" >&2; env | grep UET_TEST; exit 1'
                },
            },
            {
                "workstream_id": "ws-gate",
                "execution_request": {"command": "touch b.txt"},
                "acceptance_criteria": {
                    "gates": [
                        {"gate_id": "leaky", "command": 'echo "token=$UET_TEST_API_KEY"; exit 1'}
                    ]
                },
            },
        ],
    )
    async with build_worker(client, settings):
        record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.FAILED
    assert "my key is ***" in (record.workstreams["ws-tool"].reason or "")
    assert "token=***" in (record.workstreams["ws-gate"].reason or "")
    kept = [p for p in settings.home.rglob("*") if p.is_file()]
    assert any(p.name == "events.jsonl" for p in kept) and len(kept) > 5
    for path in kept:  # reports, quarantine, every log and artifact
        assert SECRET.encode() not in path.read_bytes(), path
    for wf_id in (
        record.workflow_id,
        f"{record.workflow_id}/ws/ws-tool",
        f"{record.workflow_id}/ws/ws-gate",
    ):
        history = await client.get_workflow_handle(wf_id).fetch_history()
        assert SECRET not in history.to_json(), f"{wf_id}: a payload carries the secret"


class SizeGuard(PayloadCodec):
    """Sees every payload that goes to or comes from Temporal."""

    def __init__(self) -> None:
        self.largest = 0

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.largest = max([self.largest, *(p.ByteSize() for p in payloads)])
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        self.largest = max([self.largest, *(p.ByteSize() for p in payloads)])
        return list(payloads)


async def test_a_20_mb_patch_and_a_50_mb_log_travel_by_reference(
    env: WorkflowEnvironment, settings: Settings, make_repo
) -> None:
    guard = SizeGuard()
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=dataclasses.replace(DATA_CONVERTER, payload_codec=guard),
    )
    repo: Path = make_repo({"a.txt": "a\n"})
    big_file = "python3 -c \"import sys; sys.stdout.write(''.join(f'line {i:09d} ' + 'x' * 86 + chr(10) for i in range(200000)))\" > big.txt"
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "ws-patch",
                "execution_request": {"command": big_file},
                "patch_policy": {"max_patch_bytes": 50_000_000, "max_lines_changed": 1_000_000},
            },
            {
                "workstream_id": "ws-log",
                "execution_request": {
                    "command": "head -c 50000000 /dev/zero | tr '\\0' x; echo; touch done.txt"
                },
            },
        ],
    )
    async with build_worker(client, settings):
        record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert len(show(repo, record.head_sha or "", "big.txt")) > 20_000_000
    entries = [
        json.loads(x)
        for x in (Path(record.report_dir or "") / "ledger.jsonl").read_text().splitlines()
    ]
    patch = next(e for e in entries if e["workstream_id"] == "ws-patch")["patch"]
    assert patch["size"] > 20_000_000 and patch["uri"].startswith("file://")
    logs = [p for p in (settings.home / "artifacts").rglob("*") if p.is_file()]
    big_log = max(logs, key=lambda p: p.stat().st_size)
    assert big_log.stat().st_size > 50_000_000 and big_log.read_bytes()[:5] == b"xxxxx"
    assert 0 < guard.largest < 256 * 1024, f"largest payload: {guard.largest} bytes"


async def test_a_patch_is_judged_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 20 MB patch takes seconds to parse: on the event loop that stopped the activity's
    heartbeats, and a slow machine's run retried it for ever. The parse waits here until the
    loop has moved on, which it never could if the parse held it (then: 10 s and a failure)."""
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    real = patches_module.parse_patch
    moved: list[bool] = []

    def watched(data: bytes):  # type: ignore[no-untyped-def]
        seen, deadline = ticks, time.monotonic() + 10
        while ticks == seen and time.monotonic() < deadline:
            time.sleep(0.01)
        moved.append(ticks != seen)
        return real(data)

    monkeypatch.setattr(patches_module, "parse_patch", watched)
    state = StateDir(tmp_path / "home")
    patch = b"--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-a\n+b\n"
    ticker = asyncio.create_task(ticking())
    try:
        result = await PatchActivities(state).validate_patch(
            ValidatePatchInput(
                run_id="r",
                workstream_id="ws",
                tool_id="shell",
                attempt=1,
                patch_id="p",
                base_sha="0" * 40,
                patch=state.artifacts.put_bytes(patch, "text/x-diff"),
                repo_path=str(tmp_path),
                scope=FileScope(),
                policy=PatchPolicy(),
            )
        )
    finally:
        ticker.cancel()
    assert moved == [True]
    assert result.report.ok and result.artifact.stats.files_changed == 1
