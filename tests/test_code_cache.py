"""The workflow sandbox re-imports uet's workflow modules for every workflow run; their code
is compiled once per worker process (runtime/code_cache.py), still executed afresh in each
sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import phase, run_input, run_phase
from temporalio.client import Client
from temporalio.worker import Worker

from runtime import code_cache
from runtime.plugin import HELPERS
from runtime.settings import Settings
from schemas.run import PhaseState


async def test_workflow_modules_compile_once_however_many_runs(
    client: Client, settings: Settings, worker: Worker, make_repo: Any
) -> None:
    spec = phase(
        workstreams=[
            {"workstream_id": "a", "execution_request": {"command": "echo a > a.txt"}},
            {"workstream_id": "b", "execution_request": {"command": "echo b > b.txt"}},
        ]
    )
    repo: Path = make_repo({"README.md": "hi\n"})
    first = await run_phase(client, settings, run_input(spec, repo))
    assert first.status == PhaseState.COMPLETED, first.reason
    held = code_cache.compiled()
    served = code_cache.hits("workflows.workstream")
    assert held >= 2  # at least the phase's and the workstream's definitions
    again = await run_phase(client, settings, run_input(spec, repo))
    assert again.status == PhaseState.COMPLETED, again.reason
    assert code_cache.compiled() == held  # three more sandboxes, nothing compiled again
    # …and each of the two workstreams' sandboxes imported its module from the cache.
    assert code_cache.hits("workflows.workstream") >= served + 2
    # The helpers passed through (runtime/plugin.py HELPERS) ran once, outside any sandbox:
    # `from workflows import steps` would import them afresh in every one, past the
    # passthrough (the submodule comes by importlib's own machinery).
    assert {h: code_cache.hits(h) for h in HELPERS if code_cache.hits(h)} == {}
