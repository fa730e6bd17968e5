"""`uet init` on layouts of real repositories (tests/samples/init): the languages it detects,
the workspace setup, caches and gates it chooses, and a phase file `uet validate` accepts.

Every sample becomes a git repository of its own; the CLI runs as a user runs it (a
subprocess), all samples at once, so the module stays fast. No Temporal server is needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.bootstrap import inspect, starter_phase
from runtime.cli import main
from schemas.spec import PhaseSpec

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "tests" / "samples" / "init"
VENV_SETUP = "python3 -m venv .venv"


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgSign=false",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def repository(sample: str, target: Path, extra: dict[str, str] | None = None) -> Path:
    """The sample (``*.sample`` files renamed) committed to a new git repository; ``extra``
    files are written after the commit (untracked)."""
    shutil.copytree(SAMPLES / sample, target)
    for path in list(target.rglob("*.sample")):
        path.rename(path.with_suffix(""))
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "initial")
    for name, content in (extra or {}).items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_text(content)
    return target


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> Any:
        return json.loads(self.stdout)


def run_all(jobs: dict[str, list[str]], env: dict[str, str], cwd: Path) -> dict[str, Ran]:
    """``uet ARGS…`` for every job at once (each a subprocess), then their results."""
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "starter", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, args in jobs.items()
    }
    done = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        done[name] = Ran(process.returncode, out, err)
    return done


SAMPLE_NAMES = sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
#: Written on stdout (no -o): the YAML, validated after it is saved.
ON_STDOUT = "c-kilo"


@dataclass
class World:
    repos: dict[str, Path]
    outputs: dict[str, Path]
    init: dict[str, Ran]
    validate: dict[str, Ran]


#: Gitignored local settings put in python-click's work tree (and what is not one of them).
LOCAL_FILES = {
    ".env": "API_TOKEN=local\n",
    ".env.example": "API_TOKEN=\n",
    "config/local.yaml": "debug: true\n",
    "config/app.yaml": "name: app\n",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Every sample as a repository, `uet init` on each (at once), then `uet validate` on each
    phase written (at once)."""
    base = tmp_path_factory.mktemp("init")
    env = {**os.environ, "UET_HOME": str(base / "uet-home")}
    env.pop("UET_DATABASE_URL", None)
    repos = {name: repository(name, base / name) for name in SAMPLE_NAMES}
    click = repos["python-click"]
    for name, content in LOCAL_FILES.items():
        (click / name).parent.mkdir(parents=True, exist_ok=True)
        (click / name).write_text(content)
    with (click / ".gitignore").open("a") as handle:
        handle.write(".env\n.env.*\n!.env.example\nconfig/local.*\n")
    (base / "out").mkdir()
    outputs = {name: base / "out" / f"{name}.yaml" for name in repos if name != ON_STDOUT}
    outputs["python-click"].write_text("# an earlier starter, replaced with --force\n")

    jobs = {
        name: ["init", "--repo", str(repo), "--json", "-o", str(outputs[name])]
        + (["--force"] if name == "python-click" else [])
        for name, repo in repos.items()
        if name in outputs
    }
    jobs[ON_STDOUT] = ["init", "--repo", str(repos[ON_STDOUT])]
    init = run_all(jobs, env, base)

    printed = base / "out" / f"{ON_STDOUT}.yaml"
    printed.write_text(init[ON_STDOUT].stdout)
    outputs[ON_STDOUT] = printed
    validate = run_all(
        {name: ["validate", str(path)] for name, path in outputs.items() if path.exists()},
        env,
        base,
    )
    yield World(repos, outputs, init, validate)


def gates(result: dict[str, Any]) -> dict[str, str]:
    return {
        g["gate_id"]: g["command"]
        for g in result["phase"]["defaults"]["acceptance_criteria"]["gates"]
    }


def workspace(result: dict[str, Any]) -> dict[str, Any]:
    ws: dict[str, Any] = result["phase"]["defaults"].get("workspace", {})
    return ws


#: What each sample must come out as: languages, gate id → command, setup, cache.
EXPECTED: dict[str, dict[str, Any]] = {
    "python-click": {
        "languages": ["python"],
        "gates": {
            "ruff": ".venv/bin/ruff check .",
            "mypy": ".venv/bin/mypy",
            "pytest": ".venv/bin/python -m pytest -q",
        },
        "setup": [
            VENV_SETUP,
            ".venv/bin/pip install -q -e .",
            '.venv/bin/pip install -q --upgrade "pip>=25.1"',
            ".venv/bin/pip install -q --group dev --group tests --group typing",
        ],
        "cache": [{"path": ".venv", "key": ["pyproject.toml"]}],
    },
    "python-requests": {
        "languages": ["python", "make"],
        "gates": {"ruff": "ruff check .", "pytest": ".venv/bin/python -m pytest -q"},
        "setup": [
            VENV_SETUP,
            ".venv/bin/pip install -q -e .",
            '.venv/bin/pip install -q --upgrade "pip>=25.1"',
            ".venv/bin/pip install -q --group test",
            ".venv/bin/pip install -q -r requirements-dev.txt",
        ],
        "cache": [{"path": ".venv", "key": ["pyproject.toml", "setup.py", "requirements*.txt"]}],
    },
    "node-express": {
        "languages": ["node"],
        "gates": {"npm-lint": "npm run lint", "npm-test": "npm test"},
        "setup": ["npm install"],
        "cache": [{"path": "node_modules", "key": ["package.json"]}],
    },
    "node-commander": {
        "languages": ["node"],
        "gates": {"npm-lint": "npm run check:lint", "npm-test": "npm test"},
        "setup": ["npm ci"],
        "cache": [{"path": "node_modules", "key": ["package-lock.json"]}],
    },
    "go-cobra": {
        "languages": ["go", "make"],
        "gates": {"go-vet": "go vet ./...", "go-test": "go test ./..."},
        "setup": [],
        "cache": [],
    },
    "rust-ripgrep": {
        "languages": ["rust"],
        "gates": {
            "cargo-clippy": "cargo clippy --workspace -- -D warnings",
            "cargo-test": "cargo test --workspace",
        },
        "setup": [],
        "cache": [],
    },
    "c-cjson": {
        "languages": ["c", "make"],
        "gates": {"make-test": "make test"},
        "setup": [],
        "cache": [],
    },
}


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_each_sample_gets_its_languages_setup_cache_and_gates(world: World, sample: str) -> None:
    ran = world.init[sample]
    assert ran.code == 0, ran.stderr
    result = ran.json
    want = EXPECTED[sample]
    assert result["languages"] == want["languages"]
    assert gates(result) == want["gates"]
    assert workspace(result).get("setup", []) == want["setup"]
    assert workspace(result).get("cache", []) == want["cache"]
    assert result["output"] == str(world.outputs[sample])
    # Every report line names what it is; every finding names its evidence.
    assert result["report"], result
    for note in result["report"]:
        assert note["kind"] in ("found", "chose", "undecided")
        if note["kind"] == "found":
            assert note["evidence"], note
    # The file written is the phase the JSON shows, and `uet validate` accepts it.
    written = yaml.safe_load(world.outputs[sample].read_text())
    assert written == result["phase"]
    assert world.outputs[sample].read_text().startswith("# Starter phase written by `uet init`")
    check = world.validate[sample]
    assert check.code == 0, check.stdout + check.stderr
    assert ": ok — phase " in check.stdout


def test_the_workstream_is_an_ai_example_with_review_on_failure(world: World) -> None:
    spec = PhaseSpec.model_validate(world.init["python-click"].json["phase"])
    (ws,) = spec.workstreams
    assert ws.execution_request.tool_id == "claude"
    assert ws.execution_request.prompt and "TODO" in ws.execution_request.prompt
    assert ws.review == "on_failure"
    # The defaults reached the workstream: its gates run in `after` order, lint first.
    gates_of = {g.gate_id: g for g in ws.acceptance_criteria.gates}
    assert gates_of["pytest"].after == ["ruff"]
    assert ws.workspace.cache[0].path == ".venv"


def test_the_report_says_why_and_what_it_could_not_decide(world: World) -> None:
    report = world.init["python-click"].json["report"]
    undecided = [n for n in report if n["kind"] == "undecided"]
    assert any("uv.lock" in n["evidence"] for n in undecided), undecided
    found = {n["message"]: n["evidence"] for n in report if n["kind"] == "found"}
    assert found["ruff is configured"] == ["pyproject.toml [tool.ruff]"]
    assert found["mypy is configured"] == ["pyproject.toml [tool.mypy]"]
    chose = [n["message"] for n in report if n["kind"] == "chose"]
    assert any("gate ruff" in m and "installed by setup" in m for m in chose), chose

    requests = world.init["python-requests"].json["report"]
    assert any(
        "gate ruff" in n["message"] and "the worker's ruff" in n["message"] for n in requests
    ), "ruff is not a dependency of requests: the gate says it runs the worker's ruff"
    assert any("Makefile's test not used" in n["message"] for n in requests)

    cobra = world.init["go-cobra"].json["report"]
    assert any(n["kind"] == "undecided" and ".golangci.yml" in n["evidence"] for n in cobra)
    cjson = world.init["c-cjson"].json["report"]
    assert any(n["kind"] == "undecided" and "CMakeLists.txt" in n["evidence"] for n in cjson)
    express = world.init["node-express"].json["report"]
    assert any(".npmrc" in n["evidence"] for n in express if n["kind"] == "found")
    # The human report goes to stderr, one line each.
    assert "found: python: ruff is configured [pyproject.toml [tool.ruff]]" in (
        world.init["python-click"].stderr
    )


def test_without_output_the_yaml_goes_to_stdout_and_validates(world: World) -> None:
    ran = world.init[ON_STDOUT]
    assert ran.code == 0, ran.stderr
    assert ran.stdout.startswith("# Starter phase written by `uet init` for c-kilo (c, make).")
    phase = yaml.safe_load(ran.stdout)
    assert [g["command"] for g in phase["defaults"]["acceptance_criteria"]["gates"]] == ["make"]
    assert "could not decide: make: no test command found" in ran.stderr
    assert "found: make: targets: all, kilo, clean [Makefile]" in ran.stderr
    check = world.validate[ON_STDOUT]
    assert check.code == 0, check.stdout + check.stderr


def test_gitignored_local_files_in_the_work_tree_are_included(world: World) -> None:
    include = workspace(world.init["python-click"].json)["include"]
    # Ignored and present: .env, config/local.yaml; .env.example and config/app.yaml are not
    # ignored (a checkout has them when they are committed).
    assert include == [".env", "config/local.yaml"]
    # --force replaced the earlier file.
    assert "an earlier starter" not in world.outputs["python-click"].read_text()


def test_a_directory_that_is_not_a_repository_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    assert main(["init", "--repo", str(plain), "-o", str(tmp_path / "phase.yaml")]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"uet: --repo {plain}: not a git repository")
    assert not (tmp_path / "phase.yaml").exists()


def test_an_existing_output_is_kept_without_force(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "phase.yaml"
    existing.write_text("# mine, keep it\n")
    assert main(["init", "--repo", str(world.repos["c-kilo"]), "-o", str(existing)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"uet: {existing} exists; pass --force to replace it\n")
    assert existing.read_text() == "# mine, keep it\n"


# -- the detectors, in-process ------------------------------------------------------------------


def make(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(content)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "initial")
    return repo


def profile_of(repo: Path) -> dict[str, Any]:
    profile = inspect(str(repo))
    phase = starter_phase(profile)
    PhaseSpec.model_validate(phase)
    return {
        "languages": profile.languages,
        "gates": {g.gate_id: g.command for g in profile.gates},
        "setup": profile.setup,
        "cache": profile.cache,
        "notes": [n.line() for n in profile.notes],
    }


def test_unittest_and_flake8_without_an_installable_project(tmp_path: Path) -> None:
    repo = make(
        tmp_path,
        {
            "setup.cfg": "[flake8]\nmax-line-length = 100\n",
            "tests/test_math.py": "import unittest\n\nclass T(unittest.TestCase):\n    pass\n",
            "tool.py": "print('hi')\n",
        },
    )
    got = profile_of(repo)
    assert got["languages"] == ["python"]
    assert got["gates"] == {
        "flake8": "flake8 --extend-exclude .venv .",
        "unittest": "python3 -m unittest discover -s tests",
    }
    assert got["setup"] == [] and got["cache"] == []


def test_extras_and_requirements_are_installed_and_keyed(tmp_path: Path) -> None:
    repo = make(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'p'\nversion = '1'\n"
            "[project.optional-dependencies]\ntest = ['pytest', 'mypy']\ndocs = ['sphinx']\n"
            "[tool.mypy]\nstrict = true\n",
            "requirements.txt": "requests\n",
            "requirements-docs.txt": "sphinx\n",
            "tests/test_p.py": "def test_p():\n    pass\n",
        },
    )
    got = profile_of(repo)
    assert got["setup"] == [
        VENV_SETUP,
        '.venv/bin/pip install -q -e ".[test]"',
        ".venv/bin/pip install -q -r requirements.txt",
    ]
    assert got["cache"] == [{"path": ".venv", "key": ["pyproject.toml", "requirements*.txt"]}]
    # pytest is a dependency and there are tests; mypy names no files: the whole tree.
    assert got["gates"] == {
        "mypy": ".venv/bin/mypy --exclude '^.venv/' .",
        "pytest": ".venv/bin/python -m pytest -q",
    }
    assert any("requirements-docs.txt not installed" in n for n in got["notes"])


@pytest.mark.parametrize(
    ("lockfile", "manager", "install"),
    [
        ("pnpm-lock.yaml", "pnpm", "pnpm install --frozen-lockfile"),
        ("yarn.lock", "yarn", "yarn install --frozen-lockfile"),
        ("package-lock.json", "npm", "npm ci"),
    ],
)
def test_node_lockfiles_choose_the_package_manager(
    tmp_path: Path, lockfile: str, manager: str, install: str
) -> None:
    package = {"name": "x", "scripts": {"test": "vitest run", "lint": "eslint .", "build": "tsc"}}
    repo = make(tmp_path, {"package.json": json.dumps(package), lockfile: "{}\n"})
    got = profile_of(repo)
    assert got["setup"] == [install]
    assert got["cache"] == [{"path": "node_modules", "key": [lockfile]}]
    assert got["gates"] == {
        f"{manager}-lint": f"{manager} run lint",
        f"{manager}-build": f"{manager} run build",
        f"{manager}-test": f"{manager} test",
    }


def test_npm_placeholder_test_script_is_not_a_gate(tmp_path: Path) -> None:
    package = {"name": "x", "scripts": {"test": 'echo "Error: no test specified" && exit 1'}}
    repo = make(tmp_path, {"package.json": json.dumps(package)})
    got = profile_of(repo)
    assert got["gates"] == {}
    assert any("npm's placeholder" in n for n in got["notes"])


def test_a_subdirectory_means_its_repository(tmp_path: Path) -> None:
    repo = make(tmp_path, {"go.mod": "module example.com/x\n\ngo 1.22\n", "cmd/x/main.go": ""})
    profile = inspect(str(repo / "cmd"))
    assert profile.root == repo.resolve()
    assert profile.languages == ["go"]
    assert "inspected its top level" in profile.notes[0].message
