"""Checkouts that work on real projects (real server, real git, a real venv and pip): a project
whose tests need its package installed and an untracked `.env` passes its gates with only a
`workspace:` section; the second checkout with the same key restores the cache instead of
running setup, relocated to its own path; cached and included files never reach a patch; a
failing setup fails the workstream with setup_failed; ports are free and distinct."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from helpers import git_out, phase, record_of, run_input, start_phase
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from schemas.run import PhaseState, RunRecord
from schemas.spec import PhaseSpec

PROJECT = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        '\n[project]\nname = "greet"\nversion = "0.1"\n\n[tool.setuptools.packages.find]\n'
        'where = ["src"]\n'
    ),
    "src/greet/__init__.py": 'VERSION = "1"\n',
    "tests/__init__.py": "",
    "tests/test_greet.py": (
        "import os\nimport unittest\n\nimport greet\n\n\n"
        "class Greet(unittest.TestCase):\n"
        "    def test_env(self):\n"
        "        lines = open('.env').read().split()\n"
        "        self.assertIn('GREETING=hello', lines)\n\n"
        "    def test_version(self):\n"
        "        self.assertEqual(greet.VERSION, os.environ['EXPECTED'])\n"
    ),
    ".gitignore": ".env\n.venv/\n*.egg-info/\n__pycache__/\n",
}
PTH = (
    'echo "$PWD/src" > "$(.venv/bin/python -c '
    '\'import sysconfig; print(sysconfig.get_paths()["purelib"])\')/greet.pth"'
)
GATE = ".venv/bin/python -m unittest discover -s tests -t . -q"


def workstream(ws_id: str, version: str, **extra: object) -> dict:
    return {
        "workstream_id": ws_id,
        "execution_request": {
            "command": f"echo 'VERSION = \"{version}\"' > src/greet/__init__.py; "
            "echo junk >> .env; mkdir -p .venv/extra; echo junk > .venv/extra/x"
        },
        "acceptance_criteria": {
            "gates": [
                # The gates see the cache as setup made it, not as the tool left it (a reused
                # checkout included), and the user's .env, not the tool's.
                {"gate_id": "pristine", "command": "test ! -e .venv/extra && ! grep junk .env"},
                {"gate_id": "unit", "command": GATE, "env": {"EXPECTED": version}},
            ]
        },
        "review": "never",
        **extra,
    }


def workspace(counter: Path) -> dict:
    return {
        "setup": [
            f"echo ran >> {counter}",
            "python3 -m venv .venv",
            # What `pip install -e .` does, without an index to reach: a .pth naming the
            # checkout's src (an absolute path, so a restored cache must be relocated).
            PTH,
        ],
        "cache": [{"path": ".venv", "key": ["pyproject.toml"]}],
        "include": [".env"],
        "env": {"PYTHONDONTWRITEBYTECODE": "1"},
    }


def project(make_repo) -> Path:  # type: ignore[no-untyped-def]
    repo: Path = make_repo(PROJECT)
    (repo / ".env").write_text("GREETING=hello\n")  # untracked, ignored: the user's own
    return repo


async def run(client: Client, settings: Settings, spec: PhaseSpec, repo: Path) -> RunRecord:
    handle = await start_phase(client, settings, run_input(spec, repo))
    return await record_of(handle)


def ledger(record: RunRecord) -> list[dict]:
    lines = (Path(str(record.report_dir)) / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_a_project_needing_its_package_and_env_passes_with_a_workspace(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo = project(make_repo)
    status_before = git_out(repo, "status", "--porcelain", "--ignored")

    # Without a workspace the gate cannot even import the package.
    bare = await run(client, settings, phase(workstreams=[workstream("bare", "2")]), repo)
    assert bare.status == PhaseState.FAILED
    assert "unit" in str(bare.workstreams["bare"].reason)

    counter = tmp_path / "setup-runs"
    spec = phase(
        max_parallel=1,
        defaults={"workspace": workspace(counter)},
        workstreams=[workstream("one", "2"), workstream("two", "3", dependencies=["one"])],
    )
    record = await run(client, settings, spec, repo)
    assert record.status == PhaseState.COMPLETED, record.reason
    # Four checkouts (a tool run and a gate run per workstream), one key: setup ran once.
    assert counter.read_text().splitlines() == ["ran"]
    # The tools wrote into .venv and .env too: none of it is in a patch.
    for entry in ledger(record):
        assert [f["path"] for f in entry["patch"]["stats"]["files"]] == ["src/greet/__init__.py"]
    # The user's repository: untouched (their branch, index, work tree and the .env).
    assert git_out(repo, "status", "--porcelain", "--ignored") == status_before
    assert (repo / ".env").read_text() == "GREETING=hello\n"
    caches = [p for p in (settings.home / "caches").iterdir() if p.is_dir()]
    assert len(caches) == 1 and (caches[0] / "meta.json").is_file()


async def test_a_failing_setup_fails_the_workstream_with_setup_failed(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    repo = project(make_repo)
    tries = tmp_path / "tries"
    spec = phase(
        workstreams=[
            workstream(
                "broken",
                "2",
                workspace={"setup": [f"echo try >> {tries}", "echo 'no compiler' >&2; exit 3"]},
            )
        ]
    )
    record = await run(client, settings, spec, repo)
    assert record.status == PhaseState.FAILED
    reason = str(record.workstreams["broken"].reason)
    assert "setup_failed" in reason and "exited with 3" in reason and "no compiler" in reason
    assert tries.read_text().splitlines() == ["try", "try"]  # once more on a fresh checkout
    events = (Path(str(record.report_dir)) / "events.jsonl").read_text()
    (failed,) = [json.loads(e) for e in events.splitlines() if '"WORKSTREAM_FAILED"' in e]
    assert failed["workstream_id"] == "broken" and "setup_failed" in failed["message"]


async def test_ports_are_free_and_distinct(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"f.txt": "f\n"})
    check = (
        "python3 -c \"import os, socket; p = [int(os.environ[f'UET_PORT_{i}']) for i in (0, 1)]; "
        "assert p[0] != p[1]; [socket.create_server(('127.0.0.1', x)).close() for x in p]\""
    )
    spec = phase(
        max_parallel=3,
        workstreams=[
            {
                "workstream_id": f"p{n}",
                "execution_request": {
                    "command": f"echo $UET_PORT_0 $UET_PORT_1 > ports-{n}.txt; {check}"
                },
                "workspace": {"ports": 2},
                "acceptance_criteria": {"gates": [{"gate_id": "ports", "command": check}]},
            }
            for n in range(3)
        ],
    )
    record = await run(client, settings, spec, repo)
    assert record.status == PhaseState.COMPLETED, record.reason
    head = record.head_sha
    assert head is not None
    seen = [
        subprocess.run(
            ["git", "show", f"{head}:ports-{n}.txt"], cwd=repo, capture_output=True, text=True
        ).stdout.split()
        for n in range(3)
    ]
    assert all(len(ports) == 2 and ports[0] != ports[1] for ports in seen)


# -- caches without a server --------------------------------------------------------------------


async def test_a_cache_key_follows_its_files_the_setup_and_nothing_else(make_repo) -> None:
    from activities.lib.git import open_repository
    from activities.lib.workspace.cache import cache_keys, tree_listing
    from schemas.spec import CacheEntry

    repo_dir: Path = make_repo({"deps.lock": "a==1\n", "src/x.py": "x = 1\n"})
    repo = await open_repository(repo_dir)
    entry = [CacheEntry(path=".venv", key=["deps.lock", "requirements*.txt"])]
    first = git_out(repo_dir, "rev-parse", "HEAD")
    (one,) = cache_keys(await tree_listing(repo, first), entry, ["make deps"])
    (repo_dir / "src/x.py").write_text("x = 2\n")
    git_out(repo_dir, "commit", "-qam", "code only")
    (same,) = cache_keys(
        await tree_listing(repo, git_out(repo_dir, "rev-parse", "HEAD")), entry, ["make deps"]
    )
    assert same.key == one.key  # code changed, the key files did not
    (other_setup,) = cache_keys(await tree_listing(repo, first), entry, ["make deps FAST=1"])
    assert other_setup.key != one.key
    (repo_dir / "requirements-dev.txt").write_text("b==2\n")
    git_out(repo_dir, "add", "requirements-dev.txt")
    git_out(repo_dir, "commit", "-qm", "a new requirements file")
    (grown,) = cache_keys(
        await tree_listing(repo, git_out(repo_dir, "rev-parse", "HEAD")), entry, ["make deps"]
    )
    assert grown.key != one.key and [f for f, _ in grown.files] == [
        "deps.lock",
        "requirements-dev.txt",
    ]

    # Asking only for what the patterns can match gives the same keys as the whole listing.
    head = git_out(repo_dir, "rev-parse", "HEAD")
    literal = [CacheEntry(path=".venv", key=["deps.lock", "src/x.py", "missing.lock"])]
    narrow = await tree_listing(repo, head, ["deps.lock", "src/x.py", "missing.lock"])
    assert narrow == {p: b for p, b in (await tree_listing(repo, head)).items() if p in narrow}
    assert sorted(narrow) == ["deps.lock", "src/x.py"]
    assert cache_keys(narrow, literal, []) == cache_keys(
        await tree_listing(repo, head), literal, []
    )


async def test_include_copies_untracked_files_only(make_repo, tmp_path: Path) -> None:
    """Included files come from the user's work tree; a tracked one keeps the commit's
    content, a symlink is never followed, the user's files are only read."""
    from activities.lib.git import open_repository
    from activities.lib.state_dir import StateDir
    from activities.lib.workspace.prepare import workspace_checkout
    from schemas.spec import WorkspaceSpec

    repo_dir: Path = make_repo(
        {"config/base.yaml": "tracked\n", ".gitignore": ".env\nconfig/local*.yaml\n"}
    )
    (repo_dir / "config/base.yaml").write_text("the user's edit\n")
    (repo_dir / "config/local.yaml").write_text("mine\n")
    (repo_dir / "config/local-link.yaml").symlink_to("/etc/hostname")
    (repo_dir / ".env").write_text("A=1\n")
    before = git_out(repo_dir, "status", "--porcelain", "--ignored")
    repo = await open_repository(repo_dir)
    spec = WorkspaceSpec(include=[".env", "config/*.yaml"])
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    async with workspace_checkout(
        spec,
        state=StateDir(tmp_path / "home"),
        repo=repo,
        repo_path=str(repo_dir),
        commit=git_out(repo_dir, "rev-parse", "HEAD"),
        scratch=scratch,
    ) as (slot, ready):
        assert (slot.tree / "config/local.yaml").read_text() == "mine\n"
        assert (slot.tree / "config/base.yaml").read_text() == "tracked\n"
        assert (slot.tree / ".env").read_text() == "A=1\n"
        assert not (slot.tree / "config/local-link.yaml").exists()
        assert set(ready.steps) >= {"listing", "checkout", "include"}
    assert git_out(repo_dir, "status", "--porcelain", "--ignored") == before


def test_two_workers_saving_one_key_at_once_leave_one_whole_cache(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from activities.lib.workspace import cache
    from schemas.spec import CacheEntry

    key = cache.CacheKey(CacheEntry(path="deps", key=["lock"]), "k" * 32, ())
    trees = []
    for n in range(4):
        tree = tmp_path / f"tree{n}"
        (tree / "deps").mkdir(parents=True)
        for i in range(300):
            (tree / "deps" / f"f{i}").write_text(f"{tree}/deps/f{i}\n")
        trees.append(tree)
    home = tmp_path / "home"
    with ThreadPoolExecutor(4) as pool:
        saved = list(pool.map(lambda t: cache.save(home, key, t), trees))
    assert saved.count(True) == 1
    (folder,) = [p for p in (home / "caches").iterdir()]
    assert folder.name == key.key and len(list((folder / "paths/deps").iterdir())) == 300
    target = tmp_path / "fresh"
    target.mkdir()
    cache.restore(folder, key, target)
    # Each file named the tree it was made in: now the one it was restored to.
    assert (target / "deps/f7").read_text() == f"{target}/deps/f7\n"


async def test_every_step_gets_the_workspace_fixer_phase_gates_and_compensation(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    """Not only the tool and its gates: a recovery command from the setup's venv heals the
    gate failure, the phase gates import the installed package and read the `.env`, and the
    compensation of the rolled-back phase runs in the same workspace."""
    repo = project(make_repo)
    counter, undone = tmp_path / "setup-runs", tmp_path / "undone"
    fixer = (  # only the setup's venv has the package (.pth) to import
        '.venv/bin/python -c "import greet, pathlib; '
        "pathlib.Path('src/greet/__init__.py').write_text('VERSION = %r' % '2')\""
    )
    ws = workstream("fixme", "2", resilience_policy={"max_fix_attempts": 1})
    ws["execution_request"]["command"] = "echo 'VERSION = \"wrong\"' > src/greet/__init__.py"
    ws["compensation"] = {
        "command": f'.venv/bin/python -c "import greet; print(greet.VERSION)" > {undone}; '
        f"cat .env >> {undone}"
    }
    spec = phase(
        defaults={"workspace": workspace(counter)},
        recoveries=[{"match": {"category": "test_assertion"}, "command": fixer}],
        gates=[
            {"gate_id": "phase-unit", "command": GATE, "env": {"EXPECTED": "2"}},
            {"gate_id": "phase-last", "after": ["phase-unit"], "command": "exit 1"},
        ],
        workstreams=[ws],
    )
    record = await run(client, settings, spec, repo)
    kinds = [e["type"] for e in events(record)]
    assert "RECOVERY_APPLIED" in kinds, kinds
    assert [(g.gate_id, g.status) for g in record.phase_gates] == [
        ("phase-unit", "passed"),
        ("phase-last", "failed"),
    ]
    # The last phase gate failed: the phase rolled back, its compensation saw the workspace.
    assert record.status == PhaseState.ROLLED_BACK
    assert undone.read_text().split() == ["2", "GREETING=hello"]
    assert counter.read_text().splitlines() == ["ran"]  # one key: setup once for all of it


def events(record: RunRecord) -> list[dict]:
    lines = (Path(str(record.report_dir)) / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_caches_are_prepared_once_before_any_tool_and_a_broken_setup_runs_none(
    client: Client, settings: Settings, worker: Worker, make_repo, tmp_path: Path
) -> None:
    """A workspace that fills a cache is set up once at the base before the first wave; when
    that setup cannot succeed, its workstreams fail with setup_failed and no tool runs (no
    AI call is paid for a checkout that could never pass its gates)."""
    repo = project(make_repo)
    counter, tools = tmp_path / "setup-runs", tmp_path / "tool-runs"
    good = phase(
        defaults={"workspace": workspace(counter)},
        workstreams=[workstream(f"w{n}", "2") for n in range(3)],
    )
    record = await run(client, settings, good, repo)
    assert record.status == PhaseState.COMPLETED, record.reason
    (prepared,) = [e for e in events(record) if e["type"] == "CACHES_PREPARED"]
    assert prepared["data"]["setup_ran"] is True and prepared["data"]["workstream_ids"] == [
        "w0",
        "w1",
        "w2",
    ]
    assert counter.read_text().splitlines() == ["ran"]

    broken = dict(workspace(counter), setup=[f"echo try >> {counter}", "exit 4"])
    streams = [workstream(f"b{n}", "2", workspace=broken) for n in range(2)]
    for ws in streams:
        ws["execution_request"]["command"] = f"echo ran >> {tools}"
    streams.append(
        {
            "workstream_id": "other",
            "execution_request": {"command": "echo x > other.txt"},
            "review": "never",
        }
    )
    record = await run(client, settings, phase(workstreams=streams), repo)
    assert record.status == PhaseState.FAILED
    for ws_id in ("b0", "b1"):
        reason = str(record.workstreams[ws_id].reason)
        assert reason.startswith("setup_failed: `exit 4` exited with 4"), reason
    assert record.workstreams["other"].status == "completed"  # it has no workspace
    assert not tools.exists()
    # Setup was tried twice in all (once more on a fresh checkout), not twice per workstream.
    assert counter.read_text().splitlines() == ["ran", "try", "try"]
    kinds = [e["type"] for e in events(record)]
    assert kinds.count("CACHES_FAILED") == 1 and kinds.count("WORKSTREAM_FAILED") == 2
