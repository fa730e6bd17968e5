"""Record the histories the replay test guards: `python tests/record_histories.py GENERATION`.

Runs representative phases (plain, fix loop, review, rollback, merge conflict, continued as
new) on a fresh dev server and writes every workflow execution's history to
tests/histories/<scenario>/<GENERATION>-NN.json. Earlier generations stay: they are what runs
started under older code look like, and must keep replaying (see workflow.patched in the README).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpers import phase, record_of, run_input, start_phase, wait_for_status
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.lib.artifacts import LocalArtifactStore
from activities.lib.parts import by_reference, whole_record
from runtime.capabilities import Capabilities
from runtime.cli.undo import rollback_input
from runtime.converter import DATA_CONVERTER
from runtime.devserver import dynamic_config_args
from runtime.plugin import build_worker, tool_worker
from runtime.records import read_report
from runtime.settings import Settings, temporal_binary
from schemas.refs import rollback_workflow_id
from schemas.review import ReviewDecision
from schemas.run import PhaseState
from workflows import search
from workflows.phase import PhaseWorkflow
from workflows.rollback import RollbackWorkflow

OUT = Path(__file__).resolve().parent / "histories"
FILE = "".join(f"line {n}\n" for n in range(1, 9))


def make_repo(root: Path, files: dict[str, str]) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True
        )
    return repo


SCENARIOS: dict[str, dict[str, Any]] = {
    "plain": {
        "workstreams": [
            {
                "workstream_id": "ws-a",
                "execution_request": {"command": "echo a > a.txt"},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "has-a", "command": "test -f a.txt"}]
                },
            },
            {"workstream_id": "ws-b", "execution_request": {"command": "echo b > b.txt"}},
            {
                "workstream_id": "ws-c",
                "dependencies": ["ws-a", "ws-b"],
                "execution_request": {"command": "cat a.txt b.txt > c.txt"},
            },
        ]
    },
    "fix_loop": {
        "workstreams": [
            {
                "workstream_id": "ws-fix",
                "execution_request": {
                    "command": 'if [ -n "$UET_FEEDBACK_FILE" ]; then echo ok > s.txt; else echo no > s.txt; fi'
                },
                "acceptance_criteria": {
                    "gates": [{"gate_id": "ok", "command": "grep -qx ok s.txt"}]
                },
            },
        ]
    },
    "review": {
        "workstreams": [
            {
                "workstream_id": "ws-r",
                "execution_request": {"command": "echo x > x.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
        ]
    },
    "rollback": {
        "gates": [{"gate_id": "no-w2", "command": "test ! -f w2.txt"}],
        "workstreams": [
            {
                "workstream_id": "ws-1",
                "execution_request": {"command": "echo 1 > w1.txt"},
                "compensation": {"command": "true"},
            },
            {
                "workstream_id": "ws-2",
                "dependencies": ["ws-1"],
                "execution_request": {"command": "echo 2 > w2.txt"},
                "compensation": {"command": "true"},
            },
        ],
    },
    "continued": {
        "workstreams": [
            {"workstream_id": "ws-1", "execution_request": {"command": "echo 1 > w1.txt"}},
            {
                "workstream_id": "ws-2",
                "dependencies": ["ws-1"],
                "execution_request": {"command": "echo 2 > w2.txt"},
            },
            {
                "workstream_id": "ws-3",
                "dependencies": ["ws-2"],
                "execution_request": {"command": "echo 3 > w3.txt"},
            },
        ]
    },
    "conflict": {
        "workstreams": [
            {"workstream_id": "ws-c", "execution_request": {"command": "sed -i '5s/.*/C5/' f.txt"}},
            {"workstream_id": "ws-d", "execution_request": {"command": "sed -i '5s/.*/D5/' f.txt"}},
        ]
    },
    # v3 on (issue 11): a gate whose program is missing fails the workstream at once.
    "gate_missing": {
        "workstreams": [
            {
                "workstream_id": "ws-g",
                "execution_request": {"command": "echo g > g.txt"},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "unit", "command": "uet-no-such-gate -q"}]
                },
            },
        ]
    },
    # v3 on (issue 11): nobody reviews: an approval is rejected at once, a failure fails.
    "no_review": {
        "workstreams": [
            {
                "workstream_id": "ws-ok",
                "review": "always",
                "execution_request": {"command": "echo a > a.txt"},
            },
            {
                "workstream_id": "ws-bad",
                "execution_request": {"command": "echo b > b.txt"},
                "resilience_policy": {"max_fix_attempts": 0},
                "acceptance_criteria": {"gates": [{"gate_id": "unit", "command": "exit 1"}]},
            },
        ]
    },
    # v4 on (issue 14): a phase's recovery rule heals a gate failure before a fix attempt.
    "recovery": {
        "recoveries": [{"match": {"category": "test_assertion"}, "command": "echo ok > s.txt"}],
        "workstreams": [
            {
                "workstream_id": "ws-heal",
                "execution_request": {"command": "echo no > s.txt"},
                "acceptance_criteria": {
                    "gates": [
                        {
                            "gate_id": "ok",
                            "command": "python3 -c \"assert open('s.txt').read().strip() == "
                            "'ok', 'not fixed'\"",
                        }
                    ]
                },
            },
        ],
    },
    # v5 on (issue 15): a workspace (setup, a cache, an included file), and an AI tool that
    # changes nothing (the fake codex: no_change fails the workstream).
    "workspace": {
        "max_parallel": 1,
        "defaults": {
            "workspace": {
                "setup": ["mkdir -p .deps && echo dep > .deps/d"],
                "cache": [{"path": ".deps", "key": ["f.txt"]}],
                "include": ["local.cfg"],
                "ports": 1,
            }
        },
        "workstreams": [
            {
                "workstream_id": "ws-w1",
                "execution_request": {"command": "cat .deps/d local.cfg > w1.txt"},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "deps", "command": "test -f .deps/d"}]
                },
            },
            {
                "workstream_id": "ws-w2",
                "dependencies": ["ws-w1"],
                "execution_request": {"command": "cat .deps/d > w2.txt"},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "deps", "command": "test -f .deps/d"}]
                },
            },
        ],
    },
    # v6 on (issue 15): caches prepared before the first wave — here a setup that cannot
    # succeed, so its workstream fails before any tool while the other one runs.
    "caches_failed": {
        "workstreams": [
            {
                "workstream_id": "ws-broken",
                "workspace": {
                    "setup": ["echo 'no compiler' >&2; exit 3"],
                    "cache": [{"path": ".deps", "key": ["f.txt"]}],
                },
                "execution_request": {"command": "echo never > never.txt"},
            },
            {"workstream_id": "ws-fine", "execution_request": {"command": "echo ok > ok.txt"}},
        ]
    },
    "no_change": {
        "workstreams": [
            {
                "workstream_id": "ws-ai",
                "execution_request": {"tool_id": "codex", "prompt": "nothing to do"},
            },
        ]
    },
    # v7 on (issue 17): tool runs on their tool's queue — here one no worker offers at first
    # (the workstream waits and says so), until a worker that has it joins.
    "tool_waits": {
        "workstreams": [
            {
                "workstream_id": "ws-aider",
                "execution_request": {"tool_id": "aider", "prompt": "WRITE a.txt: from aider"},
            },
            {"workstream_id": "ws-shell", "execution_request": {"command": "echo s > s.txt"}},
        ]
    },
    # v8 on (issue 18): notifications, sent as the journal records a review requested and the
    # run's end (here to a webhook nobody listens on: its failures are never the run's).
    "notified": {
        "notify": {"webhooks": [{"url": "http://127.0.0.1:9/hook", "timeout_s": 1}]},
        "workstreams": [
            {"workstream_id": "ws-n", "execution_request": {"command": "echo n > n.txt"}},
        ],
    },
    # v9 on (issue 19): the run publishes itself on its forge as it ends — here with no
    # token in the worker's environment, so the publish is refused and the record says so.
    "published": {
        "forge": {
            "kind": "github",
            "repository": "acme/app",
            "remote": "http://127.0.0.1:9/app.git",
            "api_url": "http://127.0.0.1:9",
            "token_env": "UET_RECORDING_HAS_NO_TOKEN",
        },
        "workstreams": [
            {
                "workstream_id": "ws-p",
                "issue": 1,
                "execution_request": {"command": "echo p > p.txt"},
            },
        ],
    },
    # v10 on (issue 20): eager mode starts ready workstreams in the plan's searched order
    # (here it packs 3+3 | 2+2+2 on two slots where longest-first would not), and integrates
    # each step as a local activity.
    "eager": {
        "scheduling": "eager",
        "max_parallel": 2,
        # v17 on: ws-4 waits for ws-0, whose slot is kept for it through ws-0's merge.
        "workstreams": [
            {
                "workstream_id": f"ws-{n}",
                "estimated_duration_s": seconds,
                "dependencies": ["ws-0"] if n == 4 else [],
                "execution_request": {"command": f"echo {n} > e{n}.txt"},
            }
            for n, seconds in enumerate([3, 3, 2, 2, 2])
        ],
    },
    # v10 on (issue 20): a phase too large for a payload (read a window of its document's
    # parts at a time) whose record is too large too (returned by reference). Long ids and
    # titles make 200 workstreams enough; only the phase's own histories are kept.
    "large": {
        "max_parallel": 8,
        "workstreams": [
            {
                "workstream_id": f"ws-{n:03d}-" + "-".join(["long-enough-to-weigh"] * 4),
                "title": f"{n}: " + "a title long enough for two windows of parts " * 50,
                "allow_no_change": True,
                "execution_request": {"command": "true"},
            }
            for n in range(200)
        ],
    },
    # v13 on (issue 20): a ready patch is applied, validated and committed in its
    # workstream's first workflow task (local activities); one waits for the other (eager).
    "ready_patch": {
        "scheduling": "eager",
        "workstreams": [
            {
                "workstream_id": "ws-p1",
                "execution_request": {"tool_id": "patch", "patch_file": "p1.diff"},
                "acceptance_criteria": {
                    "gates": [{"gate_id": "has-p", "command": "test -f p.txt"}]
                },
            },
            {
                "workstream_id": "ws-p2",
                "dependencies": ["ws-p1"],
                "execution_request": {"tool_id": "patch", "patch_file": "p2.diff"},
            },
        ],
    },
}
#: The ready patches of the scenarios that have them.
PATCHES: dict[str, dict[str, bytes]] = {
    "ready_patch": {
        "ws-p1": b"--- /dev/null\n+++ b/p.txt\n@@ -0,0 +1 @@\n+p\n",
        "ws-p2": b"--- a/f.txt\n+++ b/f.txt\n@@ -1,3 +1,3 @@\n-line 1\n+line one\n"
        b" line 2\n line 3\n",
    }
}
#: Scenarios whose workstreams' histories are like any other's: only the phase's are kept.
PHASE_ONLY = {"large"}
#: v12 on: scenarios `uet rollback` undoes once they end (their RollbackWorkflow's history is
#: kept too; "large": its record goes to the rollback and back by reference).
UNDONE = {"plain", "large"}
#: What the recording worker offers: every tool but the one "tool_waits" waits for.
RECORDER = Capabilities(tools=("shell", "patch", "claude", "codex"), labels=())


#: Run options per scenario: "continued" continues as new after every wave and writes its
#: journal out as it goes.
OPTIONS: dict[str, dict[str, Any]] = {
    "continued": {"continue_as_new_events": 1, "journal_batch": 1},
    "no_review": {"no_review": True},
}


async def record(
    client: Client, settings: Settings, name: str, root: Path, generation: str
) -> None:
    repo = make_repo(root / name, {"f.txt": FILE})
    (repo / "local.cfg").write_text("local\n")  # untracked: what `include` copies
    store = LocalArtifactStore(settings.home / "artifacts")
    input = run_input(phase(**SCENARIOS[name]), repo, **OPTIONS.get(name, {}))
    input.patch_files = {
        ws: store.put_bytes(patch, "text/x-diff") for ws, patch in PATCHES.get(name, {}).items()
    }
    input = by_reference(input, store)
    handle = await start_phase(client, settings, input)
    if name == "review":
        await wait_for_status(handle, lambda s: s.status == PhaseState.AWAITING_REVIEW)
        (request,) = await handle.query(PhaseWorkflow.pending_reviews)
        await handle.execute_update(
            PhaseWorkflow.submit_review,
            ReviewDecision(review_id=request.review_id, decision="approve", reviewer="rec"),
        )
    if name == "tool_waits":
        await wait_for_status(
            handle, lambda s: s.workstreams["ws-aider"].waiting == "no worker offers `aider`"
        )
        async with tool_worker(client, settings, "aider"):  # a host with aider joins
            final = await record_of(handle)
    else:
        final = await record_of(handle)
    if name in UNDONE:  # as `uet rollback RUN` does it (runtime/cli/undo.py)
        view = read_report(final.run_id, settings)
        assert view is not None
        await client.execute_workflow(
            RollbackWorkflow.run,
            rollback_input(whole_record(final, store), view, store, None, "recorded"),
            id=rollback_workflow_id(final.run_id),
            task_queue=settings.task_queue,
        )
    folder = OUT / name
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"{generation}-*.json"):
        old.unlink()
    wf_id = final.workflow_id
    query = f'WorkflowId = "{wf_id}" OR WorkflowId STARTS_WITH "{wf_id}/"'
    runs = sorted([(e.id, e.start_time, e.run_id) async for e in client.list_workflows(query)])
    if name in PHASE_ONLY:
        kept = {wf_id, rollback_workflow_id(final.run_id)}
        runs = [run for run in runs if run[0] in kept]
    for number, (execution_id, _, run) in enumerate(runs):
        history = await client.get_workflow_handle(execution_id, run_id=run).fetch_history()
        doc = {"workflow_id": execution_id, "history": json.loads(history.to_json())}
        path = folder / f"{generation}-{number:02d}.json"
        path.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{name}: {final.status}, {len(runs)} histories")


async def main(generation: str) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=DATA_CONVERTER,
        search_attributes=list(search.ALL),
        dev_server_extra_args=dynamic_config_args(),
    )
    # The fake AI CLIs (tests/fakes), changing nothing: the no_change scenario.
    fakes = Path(__file__).resolve().parent / "fakes"
    os.environ["PATH"] = f"{fakes}{os.pathsep}{os.environ['PATH']}"
    os.environ["UET_FAKE_SCENARIO"] = "no_change"
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", task_queue="record", ui_port=0)
        async with build_worker(env.client, settings, RECORDER):
            for name in SCENARIOS:
                await record(env.client, settings, name, Path(tmp), generation)
    await env.shutdown()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/record_histories.py GENERATION   (e.g. v2)")
    asyncio.run(main(sys.argv[1]))
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalization under the Temporal core's threads
