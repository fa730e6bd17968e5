"""Every user mistake gets one line (what, where, how to fix), a documented exit code, no
traceback, and leaves the user's repository exactly as it was (README: Troubleshooting)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import git_out, phase, run_input, run_phase, snapshot
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.lib.artifacts import LocalArtifactStore
from runtime.cli import main
from runtime.settings import Settings
from schemas.run import PhaseState

ROOT = Path(__file__).resolve().parent.parent
NO_TOOL = "phase_id: P\nworkstreams:\n  - {workstream_id: a, execution_request: {command: x}}\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def digest(tree: Path) -> str:
    """Every file under ``tree`` (its .git included), by path, mode and content."""
    h = hashlib.sha256()
    for path in sorted(tree.rglob("*")):
        if path.is_file() and not path.is_symlink():
            h.update(f"{path.relative_to(tree)}\0{path.stat().st_mode:o}\0".encode())
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def init_repo(path: Path, *, commit: bool = True, bare: bool = False) -> Path:
    path.mkdir(parents=True)
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgSign=false",
    ]
    subprocess.run(
        [*git, "init", "-q", "-b", "main", *(["--bare"] if bare else []), str(path)], check=True
    )
    if commit and not bare:
        (path / "a.txt").write_text("a\n")
        subprocess.run([*git, "add", "-A"], cwd=path, check=True)
        subprocess.run([*git, "commit", "-qm", "init"], cwd=path, check=True)
    return path


def one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("uet: "), stderr
    return lines[0]


def uet_env(home: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "UET_HOME": str(home),
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "UET_UI_PORT": str(free_port()),
        "UET_TASK_QUEUE": f"uet-bad-{uuid.uuid4().hex[:8]}",
    }
    env.pop("TEMPORAL_NAMESPACE", None)
    env.update(extra)
    return env


def uet(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "starter", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# -- 1. the phase file: `uet validate` and `uet run` -----------------------------------------

SPEC_MISTAKES = [
    pytest.param(
        "phase.yaml",
        "phase_id: P\nworkstreams:\n  - {workstream_id: a\n",
        "phase.yaml:4:1: invalid YAML: expected ',' or '}'",
        id="malformed-yaml",
    ),
    pytest.param(
        "phase.json",
        '{"phase_id": "P",\n "workstreams": [}',
        "phase.json:2:18: invalid JSON: Expecting value",
        id="malformed-json",
    ),
    pytest.param(
        "phase.yaml",
        "phase_id: P\nmax_parallel: many\n" + NO_TOOL.split("\n", 1)[1],
        "phase.yaml:2: $.max_parallel: 'many' is not of type 'integer'",
        id="wrong-type",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace("{command: x}", "{comand: x}"),
        "phase.yaml:3: $.workstreams[0].execution_request: unknown field 'comand' "
        "(did you mean 'command'?)",
        id="unknown-field",
    ),
    pytest.param(
        "phase.yaml",
        "phase_id: P\nworkstreams: []\n",
        "phase.yaml:2: $.workstreams: [] should be non-empty",
        id="empty-phase",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL + "  - {workstream_id: a, execution_request: {command: y}}\n",
        "phase.yaml:4: $.workstreams[1].workstream_id: duplicate workstream id 'a'",
        id="duplicate-id",
    ),
    pytest.param(
        "phase.yaml",
        "phase_id: P\nworkstreams:\n"
        "  - {workstream_id: a, dependencies: [b], execution_request: {command: x}}\n"
        "  - {workstream_id: b, dependencies: [a], execution_request: {command: x}}\n",
        "phase.yaml:3: $.workstreams[0].dependencies: dependency cycle: a -> b -> a",
        id="cycle",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace("{workstream_id: a,", "{workstream_id: a, dependencies: [ws-x],"),
        "phase.yaml:3: $.workstreams[0].dependencies[0]: unknown dependency 'ws-x'",
        id="unknown-dependency",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace("}}", "}, constraints: {file_scope: {allowed_paths: ['src/[ab']}}}"),
        "phase.yaml:3: $.workstreams[0].constraints.file_scope.allowed_paths[0]: "
        "'src/[ab' has an unclosed '['",
        id="bad-glob",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace(
            "}}", "}, constraints: {file_scope: {allowed_paths: ['../elsewhere/**']}}}"
        ),
        "phase.yaml:3: $.workstreams[0].constraints.file_scope.allowed_paths[0]: "
        "'../elsewhere/**' contains '..'; scopes cannot leave the repository",
        id="scope-escapes-repo",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace("{command: x}", "{tool_id: patch, patch_file: nope.diff}"),
        "phase.yaml:3: $.workstreams[0].execution_request.patch_file: patch file "
        "'nope.diff' not found",
        id="missing-patch-file",
    ),
    pytest.param(
        "phase.yaml",
        "phase_id: P\nphase_id: Q\nworkstreams: []\n",
        "phase.yaml:2:1: invalid YAML: duplicate key 'phase_id' (first on line 1)",
        id="duplicate-key",
    ),
    pytest.param(
        "phase.yaml",
        NO_TOOL.replace("command: x", 'command: "caf\xe9"').encode("latin-1"),
        "phase.yaml:3:57: not UTF-8 text (byte 0xe9); save the phase file as UTF-8",
        id="not-utf8",
    ),
    pytest.param(
        "phase.yaml",
        None,
        "phase.yaml: is a directory; pass the path of a phase file",
        id="directory",
    ),
    pytest.param("absent.yaml", "", "absent.yaml: no such file", id="missing-file"),
    pytest.param("phase.yaml", "", "phase.yaml: the phase file is empty", id="empty-file"),
]


@pytest.mark.parametrize(("name", "content", "message"), SPEC_MISTAKES)
def test_phase_file_mistakes(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    content: str | bytes | None,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # messages name the file as the user typed it
    monkeypatch.setenv("UET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # never reached
    repo = init_repo(tmp_path / "repo")
    spec = Path(name)
    if content is None:
        spec.mkdir()
    elif isinstance(content, bytes):
        spec.write_bytes(content)
    elif name != "absent.yaml":
        spec.write_text(content)
    before = digest(repo)
    for command in (["validate", name], ["run", name, "--repo", "repo"]):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 2, (command, err)
        line = one_line(err)
        assert line.startswith(f"uet: {message}"), (command, line)
    assert digest(repo) == before
    assert not (tmp_path / "home").exists()  # nothing was started or written


# -- 2. the repository -------------------------------------------------------------------------


def _repo_case(tmp_path: Path, case: str) -> tuple[str, Path | None, str]:
    """(--repo argument, directory to keep unchanged, phase file text)."""
    spec = NO_TOOL
    match case:
        case "missing":
            return str(tmp_path / "nope"), None, spec
        case "a-file":
            (tmp_path / "file").write_text("x")
            return str(tmp_path / "file"), tmp_path / "file", spec
        case "not-git":
            (tmp_path / "plain").mkdir()
            (tmp_path / "plain" / "f").write_text("x")
            return str(tmp_path / "plain"), tmp_path / "plain", spec
        case "no-commits":
            repo = init_repo(tmp_path / "empty", commit=False)
            return str(repo), repo, spec
        case "bare-no-commits":
            repo = init_repo(tmp_path / "bare.git", bare=True)
            return str(repo), repo, spec
        case "base-ref-missing":
            repo = init_repo(tmp_path / "repo")
            return str(repo), repo, "base_ref: release-9\n" + spec
        case "base-ref-in-empty-repo":
            repo = init_repo(tmp_path / "empty", commit=False)
            return str(repo), repo, "base_ref: main\n" + spec
    raise AssertionError(case)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "nope: no such directory; pass the path of a git repository"),
        ("a-file", "file: is a file, not a directory; pass a git repository"),
        ("not-git", "is not a git repository; pass a git repository"),
        ("no-commits", "the repository has no commits yet; commit something first"),
        ("bare-no-commits", "the repository has no commits yet; commit something first"),
        ("base-ref-missing", "base_ref 'release-9' does not name a commit in"),
        ("base-ref-in-empty-repo", "base_ref 'main' does not name a commit in"),
    ],
)
def test_repository_mistakes(tmp_path: Path, case: str, message: str) -> None:
    repo_arg, keep, spec_text = _repo_case(tmp_path, case)
    spec = tmp_path / "phase.yaml"
    spec.write_text(spec_text)
    before = digest(keep) if keep and keep.is_dir() else None
    result = uet("run", str(spec), "--repo", repo_arg, env=uet_env(tmp_path / "home"))
    assert result.returncode == 2, result.stderr
    assert message in one_line(result.stderr)
    if before is not None:
        assert keep is not None and digest(keep) == before
    assert not (tmp_path / "home" / "server.pid").exists()  # failed before any server


# -- 3. Temporal and the environment --------------------------------------------------------


@dataclass
class EnvCase:
    args: tuple[str, ...]
    code: int
    message: str
    env: dict[str, str]


@pytest.fixture
def listening() -> Iterator[int]:
    """A port on which something that is not Temporal listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _env_case(case: str, tmp_path: Path, listening: int, temporal: str) -> EnvCase:
    run = ("run", str(tmp_path / "phase.yaml"), "--repo", str(tmp_path / "repo"))
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    match case:
        case "unreachable-remote":
            return EnvCase(
                run,
                3,
                "Temporal at uet-nowhere.invalid:7233 is unreachable (cannot "
                "resolve the host name); check TEMPORAL_ADDRESS",
                {"TEMPORAL_ADDRESS": "uet-nowhere.invalid:7233"},
            )
        case "unknown-namespace":
            return EnvCase(
                run,
                3,
                "Temporal namespace 'uet-no-such-ns' does not exist on this "
                "server; set TEMPORAL_NAMESPACE",
                {"TEMPORAL_ADDRESS": temporal, "TEMPORAL_NAMESPACE": "uet-no-such-ns"},
            )
        case "unknown-namespace-status":
            return EnvCase(
                ("status", "01J00000000000000000000000"),
                3,
                "Temporal namespace 'uet-no-such-ns' does not exist",
                {"TEMPORAL_ADDRESS": temporal, "TEMPORAL_NAMESPACE": "uet-no-such-ns"},
            )
        case "server-port-in-use":
            return EnvCase(
                run,
                3,
                f"port {listening} on 127.0.0.1 is in use by something that is "
                "not a Temporal server",
                {"TEMPORAL_ADDRESS": f"127.0.0.1:{listening}"},
            )
        case "ui-port-in-use":
            return EnvCase(
                run,
                3,
                f"Web UI port {listening} is in use; set UET_UI_PORT",
                {"UET_UI_PORT": str(listening)},
            )
        case "server-command-port-in-use":
            return EnvCase(
                ("server",),
                3,
                f"port {listening} on 127.0.0.1 is in use",
                {"TEMPORAL_ADDRESS": f"127.0.0.1:{listening}"},
            )
        case "state-dir-not-writable":
            return EnvCase(
                run,
                2,
                f"state dir {a_file}/home is not writable (Not a directory); set UET_HOME",
                {"UET_HOME": f"{a_file}/home"},
            )
        case "bad-ui-port-setting":
            return EnvCase(
                run, 2, "UET_UI_PORT='eighty' is not a port number", {"UET_UI_PORT": "eighty"}
            )
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "unreachable-remote",
        "unknown-namespace",
        "unknown-namespace-status",
        "server-port-in-use",
        "ui-port-in-use",
        "server-command-port-in-use",
        "state-dir-not-writable",
        "bad-ui-port-setting",
    ],
)
async def test_environment_mistakes(
    env: WorkflowEnvironment, tmp_path: Path, listening: int, case: str
) -> None:
    repo = init_repo(tmp_path / "repo")
    (tmp_path / "phase.yaml").write_text(NO_TOOL)
    temporal = env.client.service_client.config.target_host
    spec = _env_case(case, tmp_path, listening, temporal)
    before = digest(repo)
    result = await asyncio.to_thread(
        uet, *spec.args, env=uet_env(tmp_path / "home", **spec.env), timeout=60
    )
    assert result.returncode == spec.code, result.stderr
    assert spec.message in one_line(result.stderr)
    assert digest(repo) == before
    assert not (tmp_path / "home" / "server.pid").exists()  # no server was left behind


def test_server_stop_with_an_unusable_state_dir(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    result = uet("server", "stop", env=uet_env(tmp_path / "a-file" / "home"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    assert result.stdout.strip() == "nothing was running"


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch, marker: bytes | None = None) -> None:
    """Simulated ENOSPC on every artifact write (that contains ``marker``)."""
    original = LocalArtifactStore._write

    def write(target: Path, chunks: Any) -> None:
        data = b"".join(chunks)
        if marker is None or marker in data:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(target, [data])

    monkeypatch.setattr(LocalArtifactStore, "_write", staticmethod(write))


def test_disk_full_is_a_clear_non_retryable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    real_fdopen = os.fdopen

    class FullDisk:  # the file object's write fails like a full disk does
        def __init__(self, fd: int, mode: str) -> None:
            self.file = real_fdopen(fd, mode)

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.file.close()

        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("activities.lib.artifacts.local.os.fdopen", FullDisk)
    for put in (lambda: store.put_bytes(b"diff"), lambda: store.put_file(Path(__file__))):
        with pytest.raises(ApplicationError) as raised:
            put()
        error = raised.value
        assert error.type == "DiskFull" and error.non_retryable
        assert str(tmp_path / "artifacts") in error.message and "free space" in error.message
        assert "\n" not in error.message
    # Nothing half-written is left behind, and other errors are not disguised as DiskFull.
    assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]
    monkeypatch.undo()
    monkeypatch.setattr(
        "activities.lib.artifacts.local.os.fdopen",
        lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")),
    )
    with pytest.raises(OSError):
        store.put_bytes(b"other")


def test_disk_full_while_importing_a_patch_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo")
    (tmp_path / "fix.diff").write_text("diff --git a/a.txt b/a.txt\n")
    spec = tmp_path / "phase.yaml"
    spec.write_text(NO_TOOL.replace("{command: x}", "{tool_id: patch, patch_file: fix.diff}"))
    monkeypatch.setenv("UET_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # never reached
    _fill_the_disk(monkeypatch)
    before = digest(repo)
    assert main(["run", str(spec), "--repo", str(repo)]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"uet: a: patch_file {tmp_path / 'fix.diff'}: no space left to write")
    assert f"{tmp_path / 'home' / 'artifacts'}" in line and "free space" in line
    assert digest(repo) == before


async def test_disk_full_during_a_run_fails_the_workstream_with_one_line(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo: Path = make_repo({"a.txt": "a\n"})
    before = snapshot(repo)
    _fill_the_disk(monkeypatch, marker=b"FILL-THE-DISK")
    spec = phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "loud",
                "execution_request": {"command": "echo FILL-THE-DISK; touch x"},
            },
            {"workstream_id": "quiet", "execution_request": {"command": "touch y"}},
        ],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.FAILED
    reason = record.workstreams["loud"].reason or ""
    assert reason.splitlines()[0].startswith(
        f"no space left to write an artifact to {settings.home / 'artifacts'}"
    ), reason
    assert record.workstreams["quiet"].status == "completed"  # the rest carries on
    assert snapshot(repo) == before


# -- 4. tools and patches: workstream failures, reported in the run record ------------------

STALE_DIFF = "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-zzz\n+yyy\n"
HUGE = 80_000_000  # more than the 64 MiB a tool log keeps
TOOL_PHASE = f"""\
phase_id: PH-TOOLS
defaults: {{review: never, resilience_policy: {{max_fix_attempts: 0}}}}
workstreams:
  - {{workstream_id: missing-binary, execution_request: {{command: [uet-no-such-binary, x]}}}}
  - {{workstream_id: missing-in-shell, execution_request: {{command: "uet-no-such-binary x"}}}}
  - workstream_id: slow
    execution_request: {{command: "sleep 30"}}
    resilience_policy: {{timeout_s: 1}}
  - {{workstream_id: crash, execution_request: {{command: "echo dying >&2; kill -SEGV $$"}}}}
  - {{workstream_id: bad-utf8-exit, execution_request: {{command: "printf 'bad \\\\377 bytes\\\\n'; exit 3"}}}}
  - {{workstream_id: bad-utf8-ok, execution_request: {{command: "printf '\\\\377\\\\376\\\\n'; echo ok > u.txt"}}}}
  - {{workstream_id: huge-output, execution_request: {{command: "head -c {HUGE} /dev/zero; echo ok > h.txt"}}}}
  - {{workstream_id: stale-patch, execution_request: {{tool_id: patch, patch_file: stale.diff}}}}
"""

TOOL_MISTAKES = [
    ("missing-binary", "failed", "missing-binary: command not found: ['uet-no-such-binary', 'x']"),
    (
        "missing-in-shell",
        "failed",
        "missing-in-shell: command not found: 'uet-no-such-binary x' (/bin/sh: 1: uet-no-such-binary",
    ),
    ("slow", "failed", "tool timed out after 1s"),
    ("crash", "failed", "tool command was killed by signal 11 (SIGSEGV)"),
    ("bad-utf8-exit", "failed", "tool command exited with 3"),
    ("bad-utf8-ok", "completed", None),
    ("huge-output", "completed", None),
    (
        "stale-patch",
        "failed",
        "stale-patch: patch_file 'stale.diff' at {base} does not apply: error: patch failed: a.txt:1",
    ),
]


def user_refs(repo: Path) -> list[str]:
    """Every ref except uet's own (refs/heads/uet/…, refs/tags/uet/…)."""
    refs = git_out(repo, "for-each-ref", "--format=%(refname) %(objectname)").splitlines()
    return [r for r in refs if not r.startswith(("refs/heads/uet/", "refs/tags/uet/"))]


@dataclass
class ToolRun:
    result: subprocess.CompletedProcess[str]
    record: dict[str, Any]
    repo: Path
    home: Path
    base: str
    unchanged: bool


@pytest.fixture(scope="module")
async def tool_run(
    env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ToolRun]:
    """One phase with every kind of tool mistake, run once through the CLI."""
    tmp = tmp_path_factory.mktemp("tools")
    repo = init_repo(tmp / "repo")
    (tmp / "phase.yaml").write_text(TOOL_PHASE)
    (tmp / "stale.diff").write_text(STALE_DIFF)
    before = snapshot(repo)
    refs_before = user_refs(repo)
    environment = uet_env(
        tmp / "home", TEMPORAL_ADDRESS=env.client.service_client.config.target_host
    )
    result = await asyncio.to_thread(
        uet,
        "run",
        str(tmp / "phase.yaml"),
        "--repo",
        str(repo),
        "--json",
        env=environment,
        timeout=120,
    )
    unchanged = snapshot(repo) == before and user_refs(repo) == refs_before
    record = json.loads(result.stdout) if result.stdout else {}
    yield ToolRun(result, record, repo, tmp / "home", git_out(repo, "rev-parse", "HEAD"), unchanged)


def test_a_failed_tool_run_exits_1_without_a_traceback(tool_run: ToolRun) -> None:
    assert tool_run.result.returncode == 1, tool_run.result.stderr
    assert tool_run.record["status"] == "failed"
    assert "Traceback" not in tool_run.result.stderr, tool_run.result.stderr[:3000]
    assert tool_run.unchanged
    # The captured tool log is bounded, whatever the tool printed.
    blobs = [p.stat().st_size for p in (tool_run.home / "artifacts").rglob("*") if p.is_file()]
    assert blobs and max(blobs) < (64 << 20) + 1000 < HUGE


@pytest.mark.parametrize(
    ("ws", "status", "reason"), [pytest.param(*case, id=case[0]) for case in TOOL_MISTAKES]
)
def test_tool_and_patch_mistakes(
    tool_run: ToolRun, ws: str, status: str, reason: str | None
) -> None:
    entry = tool_run.record["workstreams"][ws]
    assert entry["status"] == status, entry
    if reason is None:
        assert entry["reason"] is None and entry["commit"]
        return
    headline = entry["reason"].splitlines()[0]
    assert headline.startswith(reason.format(base=tool_run.base[:12])), entry["reason"]
    # The progress table shows the reason on the workstream's own line.
    assert any(
        line.strip().startswith(ws) and "failed" in line
        for line in tool_run.result.stderr.splitlines()
    )


# -- a bare repository is supported: uet never needs a work tree ------------------------------


async def test_a_bare_repository_works(env: WorkflowEnvironment, tmp_path: Path) -> None:
    source = init_repo(tmp_path / "src")
    bare = tmp_path / "bare.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True)
    spec = tmp_path / "phase.yaml"
    spec.write_text(
        "phase_id: PH-BARE\ndefaults: {review: never}\nworkstreams:\n"
        "  - {workstream_id: a, execution_request: {command: 'echo hi > new.txt'}}\n"
    )
    main_before = git_out(bare, "rev-parse", "refs/heads/main")
    environment = uet_env(
        tmp_path / "home", TEMPORAL_ADDRESS=env.client.service_client.config.target_host
    )
    result = await asyncio.to_thread(
        uet, "run", str(spec), "--repo", str(bare), "--json", env=environment, timeout=120
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["status"] == "completed"
    assert git_out(bare, "show", f"{record['integration_branch']}:new.txt") == "hi"
    assert git_out(bare, "rev-parse", "refs/heads/main") == main_before
    assert git_out(bare, "rev-parse", "--is-bare-repository") == "true"
