"""The artifact store's backends: PostgreSQL on a real server (round trips, streaming, hash
checks, concurrent and killed writers, the read-through cache, gc), the choice of backend
from the environment, and a run whose workers keep no blob of their own on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from helpers import phase, run_input, run_phase
from sqlalchemy import text
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.lib import gc
from activities.lib.artifacts import (
    LocalArtifactStore,
    UnusableArtifactStore,
    open_artifact_store,
)
from activities.lib.artifacts.base import file_digest
from activities.lib.artifacts.postgres import PostgresArtifactStore
from activities.lib.state_dir import StateDir
from activities.lib.step_env import step_env
from runtime.artifact_store import artifact_store
from runtime.errors import UserError
from runtime.settings import Settings
from schemas.base import ArtifactRef
from schemas.run import PhaseState, WorkstreamState

ROOT = Path(__file__).resolve().parent.parent
SMALL = 64 << 10  # chunk size of most tests here: many chunks from little data


def new_database(postgres_url: str) -> str:
    """A fresh database on the tests' server (test_telemetry_db wants postgres_url's empty)."""
    server = make_url(postgres_url)
    name = f"uet_artifacts_{uuid.uuid4().hex[:10]}"
    admin = f"host={server.host} port={server.port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return server.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="module")
def artifacts_url(postgres_url: str) -> str:
    return new_database(postgres_url)


def pg_store(url: str, home: Path, chunk_size: int = SMALL) -> PostgresArtifactStore:
    return PostgresArtifactStore(make_url(url), home / "artifacts", chunk_size)


def sql(store: PostgresArtifactStore, statement: str, **params: Any) -> list[Any]:
    with store._engine.begin() as connection:
        result = connection.execute(text(statement), params)
        return list(result) if result.returns_rows else []


def chunk_count(store: PostgresArtifactStore, sha256: str) -> int:
    rows = sql(store, "SELECT count(*) FROM artifact_chunks WHERE sha256 = :s", s=sha256)
    return int(rows[0][0])


def header(store: PostgresArtifactStore, sha256: str) -> Any:
    rows = sql(store, "SELECT size, used_at FROM artifacts WHERE sha256 = :s", s=sha256)
    return rows[0] if rows else None


# -- the PostgreSQL backend ---------------------------------------------------------------------


def test_bytes_and_a_streamed_multi_chunk_file_round_trip(artifacts_url: str, tmp_path: Path):
    store = pg_store(artifacts_url, tmp_path)
    ref = store.put_bytes(b"hello artifacts", "text/plain")
    assert store.read_bytes(ref) == b"hello artifacts" and ref.size == 15
    assert ref.media_type == "text/plain"
    empty = store.put_bytes(b"")
    assert store.read_bytes(empty) == b"" and chunk_count(store, empty.sha256) == 0

    big = tmp_path / "big.log"
    data = os.urandom(5 * SMALL + 123)
    big.write_bytes(data)
    file_ref = store.put_file(big, "text/plain")
    assert file_ref.size == len(data) and chunk_count(store, file_ref.sha256) == 6
    pieces = list(store.iter_chunks(file_ref))
    assert [len(p) for p in pieces] == [SMALL] * 5 + [123]
    assert b"".join(pieces) == data == store.read_bytes(file_ref)
    # Another store on the same database (another worker, the CLI) reads the same blob.
    assert pg_store(artifacts_url, tmp_path / "other").read_bytes(file_ref) == data


def test_large_files_stream_in_and_out_without_being_held_in_memory(
    artifacts_url: str, tmp_path: Path
):
    big = tmp_path / "huge.bin"
    size = 24 << 20
    with big.open("wb") as out:
        for _ in range(size // (1 << 20)):
            out.write(os.urandom(1 << 20))
    store = pg_store(artifacts_url, tmp_path, chunk_size=1 << 20)
    store.read_bytes(store.put_bytes(b"warm up: schema check, pool, statement caches"))
    tracemalloc.start()
    try:
        ref = store.put_file(big)
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        total = sum(len(chunk) for chunk in store.iter_chunks(ref))
        _, read_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size and chunk_count(store, ref.sha256) == 24
    assert put_peak < 8 << 20 and read_peak < 8 << 20, (put_peak, read_peak)


def test_a_corrupt_chunk_is_found_and_never_reaches_the_cache(artifacts_url: str, tmp_path: Path):
    store = pg_store(artifacts_url, tmp_path)
    ref = store.put_bytes(os.urandom(3 * SMALL))
    sql(
        store,
        "UPDATE artifact_chunks SET data = :d WHERE sha256 = :s AND seq = 1",
        d=b"x" * SMALL,
        s=ref.sha256,
    )
    for read in (store.read_bytes, store.verified_path):
        with pytest.raises(ApplicationError) as raised:
            read(ref)
        assert raised.value.type == "ArtifactCorrupt" and raised.value.non_retryable
    assert not [p for p in (tmp_path / "artifacts").rglob("*") if p.is_file()]


def test_a_missing_artifact_is_non_retryable_and_names_the_store(
    artifacts_url: str, tmp_path: Path
):
    store = pg_store(artifacts_url, tmp_path)
    ref = ArtifactRef(sha256="ab" * 32, size=1, uri="x", media_type="text/plain")
    for read in (store.read_bytes, store.verified_path):
        with pytest.raises(ApplicationError) as raised:
            read(ref)
        error = raised.value
        assert error.type == "ArtifactMissing" and error.non_retryable
        assert store.location in error.message and "\n" not in error.message
    url = make_url(artifacts_url)
    assert store.location == f"postgresql://127.0.0.1:{url.port}/{url.database}"


def test_storing_again_changes_nothing_but_used_at(artifacts_url: str, tmp_path: Path):
    store = pg_store(artifacts_url, tmp_path)
    data = os.urandom(2 * SMALL + 5)
    first = store.put_bytes(data)
    sql(
        store,
        "UPDATE artifacts SET used_at = now() - interval '30 days' WHERE sha256 = :s",
        s=first.sha256,
    )
    old = header(store, first.sha256).used_at
    (tmp_path / "same").write_bytes(data)
    again = store.put_file(tmp_path / "same")
    assert again == first
    assert chunk_count(store, first.sha256) == 3
    assert header(store, first.sha256).used_at > old
    assert store.read_bytes(again) == data


WRITER = """
import sys, time
from pathlib import Path
from sqlalchemy.engine import make_url
from activities.lib.artifacts.postgres import PostgresArtifactStore

url, cache, source, chunk, mode = sys.argv[1:6]
store = PostgresArtifactStore(make_url(url), Path(cache), int(chunk))
store.listing()  # connected, schema checked: ready to race
if mode == "slow":
    insert = store._insert_chunk
    def slowly(connection, sha256, seq, data):
        insert(connection, sha256, seq, data)
        print(f"chunk {seq}", flush=True)
        time.sleep(0.05)
    store._insert_chunk = slowly
print("ready", flush=True)
sys.stdin.readline()
ref = store.put_file(Path(source))
print(ref.model_dump_json(), flush=True)
"""


def writer(url: str, tmp_path: Path, source: Path, chunk: int, mode: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            url,
            str(tmp_path / f"cache-{chunk}"),
            str(source),
            str(chunk),
            mode,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def test_two_processes_storing_the_same_large_artifact_at_once(artifacts_url: str, tmp_path: Path):
    source = tmp_path / "shared.bin"
    data = os.urandom(4 << 20)
    source.write_bytes(data)
    # Different chunk sizes: had both written chunks, the blob would be a mix of the two.
    writers = [writer(artifacts_url, tmp_path, source, chunk, "fast") for chunk in (SMALL, 48_000)]
    for process in writers:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    refs = []
    for process in writers:
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0
        refs.append(ArtifactRef.model_validate_json(out.strip().splitlines()[-1]))
    assert refs[0] == refs[1]
    store = pg_store(artifacts_url, tmp_path)
    assert store.read_bytes(refs[0]) == data
    assert chunk_count(store, refs[0].sha256) in (len(data) // SMALL, -(-len(data) // 48_000))
    rows = sql(store, "SELECT count(*) FROM artifacts WHERE sha256 = :s", s=refs[0].sha256)
    assert rows[0][0] == 1


def test_a_writer_killed_mid_stream_leaves_nothing_visible(artifacts_url: str, tmp_path: Path):
    source = tmp_path / "partial.bin"
    data = os.urandom(40 * SMALL)
    source.write_bytes(data)
    process = writer(artifacts_url, tmp_path, source, SMALL, "slow")
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write("go\n")
    process.stdin.flush()
    while process.stdout.readline().strip() != "chunk 3":
        pass
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    store = pg_store(artifacts_url, tmp_path)
    sha256, _ = file_digest(source)
    assert header(store, sha256) is None and chunk_count(store, sha256) == 0
    ref = ArtifactRef(sha256=sha256, size=len(data), uri="", media_type="")
    with pytest.raises(ApplicationError) as raised:
        store.read_bytes(ref)
    assert raised.value.type == "ArtifactMissing"
    # The dead writer's transaction (and its lock on the name) end with its connection.
    stored = store.put_file(source)
    assert stored.sha256 == sha256 and store.read_bytes(stored) == data
    assert chunk_count(store, sha256) == 40


def test_verified_path_materialises_a_checked_local_copy(artifacts_url: str, tmp_path: Path):
    store = pg_store(artifacts_url, tmp_path / "worker-home")
    data = b"diff --git a/x b/x\n" + os.urandom(2 * SMALL)
    ref = pg_store(artifacts_url, tmp_path / "cli-home").put_bytes(data, "text/x-diff")
    path = store.verified_path(ref)
    assert (
        path == tmp_path / "worker-home" / "artifacts" / "sha256" / ref.sha256[:2] / ref.sha256[2:]
    )
    assert path.read_bytes() == data and path.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert store.verified_path(ref) == path
    # A damaged cache copy is fetched again.
    path.chmod(0o644)
    path.write_bytes(b"damaged")
    assert store.verified_path(ref).read_bytes() == data


def test_the_uri_and_messages_hold_no_password(postgres_url: str, tmp_path: Path):
    server = make_url(new_database(postgres_url))
    # The test server trusts loopback: the password is sent nowhere, but it is in the URL.
    secret = server.set(username="postgres", password="s3cret-pw")
    store = PostgresArtifactStore(secret, tmp_path / "artifacts")
    ref = store.put_bytes(b"x")
    assert ref.uri == f"postgresql://127.0.0.1:{server.port}/{server.database}#sha256:{ref.sha256}"
    assert "s3cret" not in ref.uri and "postgres@" not in ref.uri
    with pytest.raises(ApplicationError) as raised:
        store.read_bytes(ref.model_copy(update={"sha256": "cd" * 32}))
    assert "s3cret" not in raised.value.message


def test_an_unreachable_database_is_a_retryable_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    nowhere = "postgresql+psycopg://uet:hunter2@127.0.0.1:1/nowhere"
    store = PostgresArtifactStore(make_url(nowhere), tmp_path / "artifacts")
    for attempt in (
        lambda: store.put_bytes(b"x"),
        lambda: store.read_bytes(store.ref("a" * 64, 1, "")),
    ):
        with pytest.raises(ApplicationError) as raised:
            attempt()
        error = raised.value
        assert error.type == "ArtifactStoreUnavailable" and not error.non_retryable
        assert "postgresql://127.0.0.1:1/nowhere" in error.message
        assert "hunter2" not in error.message and "\n" not in error.message
    # A command says so in one line before it does anything; gc goes on with the rest.
    monkeypatch.setenv("UET_ARTIFACTS_URL", nowhere)
    with pytest.raises(UserError) as user_error:
        artifact_store(tmp_path)
    assert user_error.value.exit_code == 1 and "is unreachable" in user_error.value.lines[0]
    plan = gc.plan_gc(tmp_path, 86400, set(), time.time(), set(), store=store)
    assert any("not checked" in note and "unreachable" in note for note in plan.notes)


def test_gc_deletes_unused_old_rows_and_keeps_what_runs_use(postgres_url: str, tmp_path: Path):
    store = pg_store(new_database(postgres_url), tmp_path / "home")
    inner = store.put_bytes(b"a patch, named only inside the journal\n")
    journal = store.put_bytes(json.dumps({"patch": {"sha256": inner.sha256}}).encode())
    unused = store.put_bytes(os.urandom(3 * SMALL))
    again = store.put_bytes(b"stored again between the plan and its removal\n")
    recent = store.put_bytes(b"stored a minute ago\n")
    sql(
        store,
        "UPDATE artifacts SET used_at = now() - interval '30 days' WHERE sha256 <> :s",
        s=recent.sha256,
    )
    home = tmp_path / "home"
    plan = gc.plan_gc(home, 14 * 86400, set(), time.time(), {journal.sha256}, store=store)
    planned = {item.sha256 for item in plan.items if item.kind == "artifact"}
    assert planned == {unused.sha256, again.sha256}
    assert all(i.path.startswith("postgresql://") for i in plan.items if i.sha256)
    assert plan.usage["database artifacts"] == sum(
        r.size for r in (inner, journal, unused, again, recent)
    )
    store.put_bytes(b"stored again between the plan and its removal\n")
    done = gc.apply(plan)
    assert [item.sha256 for item in done.removed] == [unused.sha256]
    assert [reason for _, reason in done.skipped] == ["stored again since the plan"]
    assert header(store, unused.sha256) is None and chunk_count(store, unused.sha256) == 0
    for kept in (inner, journal, again, recent):
        assert store.read_bytes(kept)
    # Offline (no Temporal), other hosts' open runs are unknown: nothing of the database goes.
    offline = gc.plan_gc(home, 14 * 86400, set(), time.time(), None, store=store)
    assert not [item for item in offline.items if item.sha256]
    assert any("only Temporal can tell" in note for note in offline.notes)


# -- choosing the backend -----------------------------------------------------------------------


def test_the_environment_chooses_the_backend(
    artifacts_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    home = tmp_path / "home"
    monkeypatch.delenv("UET_ARTIFACTS_URL", raising=False)
    monkeypatch.delenv("UET_DATABASE_URL", raising=False)
    default = open_artifact_store(home)
    assert isinstance(default, LocalArtifactStore) and default.root == home / "artifacts"
    monkeypatch.setenv("UET_DATABASE_URL", f"sqlite:///{tmp_path / 'uet.db'}")
    assert isinstance(open_artifact_store(home), LocalArtifactStore)  # SQLite: no sharing
    monkeypatch.setenv("UET_DATABASE_URL", artifacts_url)
    shared = open_artifact_store(home)
    assert isinstance(shared, PostgresArtifactStore)
    assert shared.location == pg_store(artifacts_url, home).location
    assert shared.cache.root == home / "artifacts"  # the read-through cache
    # UET_ARTIFACTS_URL wins: a path, a file:// URL, or PostgreSQL (the bare scheme: psycopg).
    monkeypatch.setenv("UET_ARTIFACTS_URL", str(tmp_path / "blobs"))
    folder = open_artifact_store(home)
    assert isinstance(folder, LocalArtifactStore) and folder.root == tmp_path / "blobs"
    monkeypatch.setenv("UET_ARTIFACTS_URL", (tmp_path / "by url").as_uri())
    by_url = open_artifact_store(home)
    assert isinstance(by_url, LocalArtifactStore) and by_url.root == tmp_path / "by url"
    monkeypatch.setenv("UET_ARTIFACTS_URL", artifacts_url.replace("+psycopg", ""))
    bare = open_artifact_store(home)
    assert isinstance(bare, PostgresArtifactStore) and bare.url.drivername == "postgresql+psycopg"
    assert bare.read_bytes(bare.put_bytes(b"through the bare scheme")) == b"through the bare scheme"


@pytest.mark.parametrize(
    "value",
    [
        "s3://bucket/artifacts",
        "file://otherhost/srv/artifacts",
        "postgresql+psycopg://uet:hunter2@db:notaport/uet",
        "postgresql+nosuchdriver://uet:hunter2@db/uet",
        "postgresql+psycopg://uet:hunter2@db",
    ],
)
def test_an_unusable_url_is_one_clear_line(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("UET_ARTIFACTS_URL", value)
    with pytest.raises(ApplicationError) as raised:
        open_artifact_store(tmp_path)
    error = raised.value
    assert error.type == "ArtifactStoreConfig" and error.non_retryable
    assert error.message.startswith("UET_ARTIFACTS_URL=") and "\n" not in error.message
    assert "hunter2" not in error.message
    with pytest.raises(UserError) as user_error:  # what a command says
        artifact_store(tmp_path)
    assert user_error.value.lines == [error.message]
    # A worker starts, and each activity that needs the store fails with that line, once.
    state = StateDir(tmp_path)
    assert isinstance(state.artifacts, UnusableArtifactStore)
    with pytest.raises(ApplicationError) as failed:
        state.artifacts.put_bytes(b"x")
    assert failed.value.non_retryable and failed.value.message == error.message


def test_tools_never_see_the_store_url() -> None:
    env = step_env(
        source={"PATH": "/usr/bin", "UET_ARTIFACTS_URL": "postgresql://u:pw@db/uet"},
        passthrough=["UET_*"],
    )
    assert "UET_ARTIFACTS_URL" not in env


# -- a run whose workers share no disk with the command -----------------------------------------


@pytest.fixture
def artifacts_in_postgres(artifacts_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Set before the worker fixture builds (its StateDir reads the environment then)."""
    monkeypatch.setenv("UET_ARTIFACTS_URL", artifacts_url)
    return artifacts_url


async def test_a_patch_run_with_artifacts_in_postgresql(
    artifacts_in_postgres: str,
    client: Client,
    settings: Settings,
    worker: Any,
    make_repo: Any,
    tmp_path: Path,
) -> None:
    repo: Path = make_repo({"greet.py": "print('hello')\n"})
    diff = (
        "diff --git a/greet.py b/greet.py\n--- a/greet.py\n+++ b/greet.py\n"
        "@@ -1 +1,2 @@\n print('hello')\n+print('world')\n"
    )
    # What `uet run` on another machine does: its own home, the same database.
    command_store = pg_store(artifacts_in_postgres, tmp_path / "command-home")
    patch = command_store.put_bytes(diff.encode(), "text/x-diff")
    started = sql(command_store, "SELECT now()")[0][0]
    spec = phase(
        defaults={"review": "never"},
        gates=[{"gate_id": "runs", "command": "python3 greet.py | grep -q world"}],
        workstreams=[
            {
                "workstream_id": "ws-p",
                "execution_request": {"tool_id": "patch", "patch_file": "p.diff"},
                "acceptance_criteria": {"gates": [{"gate_id": "ok", "command": "true"}]},
            }
        ],
    )
    input = run_input(spec, repo)
    input.patch_files = {"ws-p": patch}
    record = await run_phase(client, settings, input)
    assert record.status == PhaseState.COMPLETED, record.reason
    assert record.workstreams["ws-p"].status == WorkstreamState.COMPLETED
    stored = {row[0] for row in sql(command_store, "SELECT sha256 FROM artifacts")}
    touched = {
        row[0]
        for row in sql(command_store, "SELECT sha256 FROM artifacts WHERE used_at >= :t", t=started)
    }
    blobs = settings.home / "artifacts" / "sha256"
    local = {p.parent.name + p.name for p in blobs.rglob("*") if p.is_file()}
    # The worker stored its logs and diffs in the database, and kept on disk only the
    # read-through cache: copies of blobs the database has, the patch among them.
    assert patch.sha256 in local and local <= stored
    assert touched - local, "the worker stored nothing in the database"
