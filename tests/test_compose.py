"""The team deployment (docker-compose.yml + Dockerfile) has the shape uet relies on.

Nothing here needs a Docker engine: the compose file is read with PyYAML and checked by the
`docker-compose` v1 CLI (Debian package `docker-compose`), whose `config` works without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = {"postgresql", "temporal", "setup", "temporal-ui", "worker"}
SEARCH_ATTRIBUTES = {"UetRunId", "UetPhaseId", "UetStatus"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1]) for s in logical]


def docker_compose(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        # CI installs it and sets UET_REQUIRE_DOCKER_COMPOSE=1, so there a missing binary fails;
        # on a developer machine with only Python and git, say what is not being checked.
        message = "docker-compose not found: apt-get install -y docker-compose"
        if os.environ.get("UET_REQUIRE_DOCKER_COMPOSE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    env.pop("UET_REPOS", None)
    proc = subprocess.run(
        [exe, "-f", str(COMPOSE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{proc.stderr}"
    return proc


# --- structure --------------------------------------------------------------------------------


def test_services_and_no_version_key(compose: dict, services: dict) -> None:
    assert set(services) == SERVICES
    assert "version" not in compose  # compose spec: the key is obsolete


def test_worker_builds_here_and_scales(services: dict) -> None:
    worker = services["worker"]
    assert worker["build"] in (".", {"context": "."})
    # Either would make `docker compose up --scale worker=N` fail for N > 1.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_worker_environment_and_volumes(compose: dict, services: dict) -> None:
    env = services["worker"]["environment"]
    host, port = env["TEMPORAL_ADDRESS"].split(":")
    assert host == "temporal" and host in services
    assert port == "7233"
    assert any(str(p).split(":")[-1] == port for p in services["temporal"]["ports"])
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["UET_TASK_QUEUE"] == "uet"
    assert env["UET_HOME"] == "/var/lib/uet"
    volumes = services["worker"]["volumes"]
    assert "uet-home:/var/lib/uet" in volumes and "uet-home" in compose["volumes"]
    assert "${UET_REPOS:-./repos}:/repos" in volumes


def test_setup_registers_exactly_uets_search_attributes(services: dict) -> None:
    setup = services["setup"]
    names = set(setup["environment"]["UET_SEARCH_ATTRIBUTES"].split())
    # The ones the workflows set, all Keyword (what the setup script registers them as).
    in_code = re.findall(r'for_(\w+)\("(\w+)"\)', (ROOT / "workflows/search.py").read_text())
    assert names == SEARCH_ATTRIBUTES == {name for _, name in in_code}
    assert {kind for kind, _ in in_code} == {"keyword"}
    assert setup["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert setup["restart"] == "no"


@pytest.mark.parametrize("existing", ["", "UetPhaseId", "UetRunId UetPhaseId UetStatus"])
def test_setup_script_is_idempotent(services: dict, tmp_path: Path, existing: str) -> None:
    """Run the setup script against a fake `temporal` CLI: 'already exists' is no error."""
    calls = tmp_path / "calls"
    fake = tmp_path / "temporal"
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\n'
        'case "$*" in *search-attribute*) for n in $EXISTING; do case "$*" in *"--name $n "*)\n'
        '  echo "Search attribute $n already exists." >&2; exit 1;; esac; done;; esac\n'
        'case "$*" in *--name\\ Broken*) echo "connection refused" >&2; exit 1;; esac\n'
    )
    fake.chmod(0o755)
    setup = services["setup"]
    script = setup["command"][0].replace("$$", "$")  # compose's escape for a literal $

    def run(attributes: str) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": f"{tmp_path}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "EXISTING": existing,
            "UET_SEARCH_ATTRIBUTES": attributes,
        }
        return subprocess.run(
            [*setup["entrypoint"], script], env=env, capture_output=True, text=True, timeout=30
        )

    proc = run(setup["environment"]["UET_SEARCH_ATTRIBUTES"])
    assert proc.returncode == 0, proc.stderr
    created = {
        line.split("--name ")[1].split()[0]
        for line in calls.read_text().splitlines()
        if "search-attribute create" in line
    }
    assert created == SEARCH_ATTRIBUTES
    assert "--type Keyword" in calls.read_text()
    assert run("Broken").returncode != 0  # any other error still fails the setup


def test_ui_on_host_8233(services: dict) -> None:
    ui = services["temporal-ui"]
    assert "8233:8080" in ui["ports"]
    assert ui["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_images_are_pinned(services: dict) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), f"{name}: {image} is not pinned"
    # Admin tools should talk the same server version.
    server = services["temporal"]["image"].split(":")[1]
    assert services["setup"]["image"].split(":")[1].startswith(server)


def test_dockerfile_installs_project_and_runs_worker() -> None:
    steps = dockerfile()
    args = {instr: [a for i, a in steps if i == instr] for instr in {i for i, _ in steps}}
    assert args["FROM"] == ["python:3.11-slim"]
    assert any(re.search(r"apt-get install [^&;]*\bgit\b", a) for a in args["RUN"])
    # The project with its team extra: the PostgreSQL driver of the telemetry database.
    assert any("pip install --no-cache-dir '.[team]'" in a for a in args["RUN"])
    assert args["USER"][-1] == "uet"
    assert any("UET_HOME=/var/lib/uet" in a for a in args["ENV"])
    assert json.loads(args["CMD"][-1]) == ["python", "-m", "worker"]
    # ...and `worker` is something `pip install .` actually installs.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "worker" in pyproject["tool"]["setuptools"]["py-modules"]
    assert any(
        d.startswith("psycopg") for d in pyproject["project"]["optional-dependencies"]["team"]
    )


def test_workers_share_uets_own_database(services: dict) -> None:
    url = services["worker"]["environment"]["UET_DATABASE_URL"]
    assert url == "postgresql+psycopg://uet:uet@postgresql:5432/uet"
    init = "./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/uet.sql:ro"
    assert init in services["postgresql"]["volumes"]
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE USER uet WITH PASSWORD 'uet'" in sql and "CREATE DATABASE uet OWNER uet" in sql


# --- docker-compose CLI -----------------------------------------------------------------------


def test_docker_compose_config_is_valid_and_worker_scales() -> None:
    resolved = yaml.safe_load(docker_compose("config").stdout)
    worker = resolved["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert worker["build"]["context"] == str(ROOT)


def test_docker_compose_services() -> None:
    assert set(docker_compose("config", "--services").stdout.split()) == SERVICES
