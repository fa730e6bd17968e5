"""Secrets never ride in a patch (issue 16, item 6): the lines a patch adds are scanned for the
worker's secret values and well-known credential formats; a hit quarantines the patch with
``secret_in_patch``, the value masked everywhere it is reported, unless the phase allow-lists
the line (``patch_policy.secret_allowlist``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import git_out, phase, run_input, run_phase, show
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.worker import Worker

from activities.lib.errors.engine import UET_CODES
from activities.lib.patch_parse import parse_patch
from activities.lib.patch_policy import History, validate
from activities.lib.secrets import (
    AddedLine,
    SecretHit,
    _plugins,
    added_lines,
    line_sha256,
    mask,
    scan,
    secret_env_values,
)
from runtime.settings import Settings
from schemas.patch import ValidationReport
from schemas.run import PhaseState, WorkstreamState
from schemas.spec import FileScope, PatchPolicy, SecretAllow

SECRET = "sk-test-0123456789abcdefSECRET"
ENV = {"UET_TEST_API_KEY": SECRET, "PATH": "/usr/bin:/bin", "HOME": "/home/someone"}
# Well-formed, not real: AWS's own documentation example and a PEM header.
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----"


def new_file(path: str, *lines: str) -> bytes:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n"
        f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}"
    ).encode()


def check(data: bytes, env: dict[str, str] | None = None, **policy: object) -> ValidationReport:
    parsed = parse_patch(data)
    return validate(
        parsed,
        len(data),
        FileScope(),
        PatchPolicy.model_validate(policy),
        History(),
        data=data,
        env=ENV if env is None else env,
    )


def hits(data: bytes, env: dict[str, str] | None = None, **allow: str) -> list[SecretHit]:
    allowlist = [SecretAllow.model_validate(allow)] if allow else []
    return scan(added_lines(data), ENV if env is None else env, allowlist)


# -- the scanner -------------------------------------------------------------------------------


def test_a_worker_secret_is_found_with_its_file_line_and_variable_but_never_shown() -> None:
    data = new_file("src/config.py", "import os", "", f'API_KEY = "{SECRET}"  # for now')
    (hit,) = hits(data)
    assert (hit.path, hit.line_no, hit.what) == (
        "src/config.py",
        3,
        "the value of $UET_TEST_API_KEY",
    )
    assert hit.masked == "sk-t…[30 chars]"
    assert hit.line_sha256 == line_sha256(f'API_KEY = "{SECRET}"  # for now')
    report = check(data)
    assert not report.ok and not report.constraints_ok and report.format_ok and report.scope_ok
    (problem,) = report.errors
    assert (problem.code, problem.path) == ("secret_in_patch", "src/config.py")
    assert problem.message.startswith("line 3: the value of $UET_TEST_API_KEY (sk-t…[30 chars])")
    assert hit.line_sha256 in problem.message  # what a person copies into the allowlist
    assert SECRET not in report.model_dump_json()


def test_line_numbers_are_the_new_files() -> None:
    data = (
        "diff --git a/app.py b/app.py\nindex 1111111..2222222 100644\n--- a/app.py\n"
        "+++ b/app.py\n@@ -10,3 +10,4 @@ def main():\n     a = 1\n-    b = 2\n"
        f'+    b = "{SECRET}"\n+    c = 3\n     return a\n'
    ).encode()
    assert [(h.path, h.line_no) for h in hits(data)] == [("app.py", 11)]


def test_well_known_credential_formats_are_found() -> None:
    data = new_file("deploy/creds.txt", f"aws_access_key_id = {AWS_KEY_ID}", PEM, "MIIEow…")
    found = [(h.line_no, h.what, h.masked) for h in hits(data, env={})]
    assert found == [
        (1, "AWS Access Key", "AKIA…[20 chars]"),
        (2, "Private Key", "BEGI…[21 chars]"),
    ]
    assert {p.code for p in check(data, env={}).errors} == {"secret_in_patch"}


def test_the_format_plugins_are_there_and_none_anchors_on_a_line() -> None:
    names = {type(p).__name__ for p in _plugins()}
    assert {"AWSKeyDetector", "PrivateKeyDetector", "GitHubTokenDetector", "SlackDetector"} <= names
    # The scan reads a file's added lines joined first; sound only while no pattern anchors.
    assert not [
        regex.pattern
        for plugin in _plugins()
        for regex in getattr(plugin, "denylist", ())
        if "^" in regex.pattern.replace("[^", "") or regex.pattern.endswith("$")
    ]
    # Entropy and keyword plugins would flag ordinary code: they are not used.
    assert not names & {"Base64HighEntropyString", "HexHighEntropyString", "KeywordDetector"}


ORDINARY = [
    'digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"',
    'blob = "dGhpcyBpcyBub3QgYSBzZWNyZXQsIGp1c3QgYmFzZTY0IGRhdGEgZm9yIGEgdGVzdA=="',
    'run_id = "01J9ZK3QW8X2V7T5R4N6M0P1BC"  # a ULID',
    'request_id = "3f2b8c9e-4d1a-4b7e-9c2f-8a6d5e4b3c21"',
    'commit = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"',
    "password = input('password: ')",
    'api_key = os.environ["ANTHROPIC_API_KEY"]',
    'url = "postgresql+psycopg://user:password@localhost/uet"',
    'SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET")',
    "x = 'Qm9ndXNLZXlBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWjAxMjM0NTY3ODk'",
]


def test_ordinary_code_with_long_random_looking_strings_is_not_flagged() -> None:
    env = {**ENV, "SHORT_KEY": "true", "GIT_AUTHOR_NAME": "Ada Lovelace"}
    data = new_file("src/app.py", *ORDINARY, "enabled = true  # by Ada Lovelace")
    assert hits(data, env={**env, "UET_TEST_API_KEY": "something-else-entirely"}) == []
    assert check(data, env={**env, "UET_TEST_API_KEY": "something-else-entirely"}).ok


def test_only_secret_named_variables_with_long_values_count() -> None:
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-api03-abcdefgh",
        "github_token": "ghp_lowercase_name_too",
        "DB_PASSWD": "hunter2hunter2",
        "OAUTH_CLIENT": "client-secret-value",
        "SHORT_TOKEN": "1234567",
        "GIT_AUTHOR_EMAIL": "ada@example.com",
        "EDITOR": "vim-with-plugins",
    }
    assert sorted(secret_env_values(env).values()) == [
        "ANTHROPIC_API_KEY",
        "DB_PASSWD",
        "OAUTH_CLIENT",
        "github_token",
    ]


def test_removed_lines_are_not_scanned_so_a_leaked_key_can_be_taken_out() -> None:
    data = (
        "diff --git a/cfg.py b/cfg.py\nindex 1111111..2222222 100644\n--- a/cfg.py\n"
        f'+++ b/cfg.py\n@@ -1,1 +1,1 @@\n-KEY = "{SECRET}"\n+KEY = os.environ["KEY"]\n'
    ).encode()
    assert hits(data) == []
    assert check(data).ok


def test_an_allow_listed_line_is_not_flagged_and_only_that_line_in_that_file() -> None:
    line = f"fixture_key = {AWS_KEY_ID}"
    data = new_file("tests/fixtures/keys.py", line, f"other = {AWS_KEY_ID} ")
    allow = {"path": "tests/fixtures/keys.py", "line_sha256": line_sha256(line)}
    assert [h.line_no for h in hits(data, env={})] == [1, 2]
    assert [h.line_no for h in hits(data, env={}, **allow)] == [2]  # other text, other hash
    elsewhere = new_file("src/keys.py", line)
    assert len(hits(elsewhere, env={}, **allow)) == 1  # same line, other file
    report = check(new_file("tests/fixtures/keys.py", line), env={}, secret_allowlist=[allow])
    assert report.ok, report.errors


def test_the_allowlist_takes_only_a_sha256() -> None:
    with pytest.raises(ValidationError, match="line_sha256"):
        PatchPolicy.model_validate({"secret_allowlist": [{"path": "a", "line_sha256": "abc"}]})
    with pytest.raises(ValidationError, match="line_sha256"):
        SecretAllow.model_validate({"path": "a", "line_sha256": "Z" * 64})
    with pytest.raises(ValidationError, match="path"):
        SecretAllow.model_validate({"path": "", "line_sha256": "a" * 64})
    assert PatchPolicy().secret_allowlist == []


@pytest.mark.parametrize("value", ["12345678", SECRET, AWS_KEY_ID, "x" * 200, "pässwörd-ünïcode"])
def test_a_mask_never_contains_the_secret(value: str) -> None:
    masked = mask(value)
    assert value not in masked
    assert masked.endswith(f"…[{len(value)} chars]")
    assert len(masked.split("…")[0]) <= len(value) // 4


def test_no_message_repeats_a_secret_not_even_a_garbage_line() -> None:
    data = new_file("a.txt", "a") + f"leftover {SECRET}\n".encode()
    report = check(data)
    assert {p.code for p in report.errors} == {"garbage_between_files"}
    assert SECRET not in report.model_dump_json()
    assert "sk-t…[30 chars]" in report.errors[0].message


def test_a_secret_in_a_file_name_is_refused_and_the_name_masked() -> None:
    report = check(new_file(f"keys/{SECRET}.txt", "nothing here"))
    (problem,) = report.errors
    assert (problem.code, problem.path) == ("secret_in_patch", "keys/sk-t…[30 chars].txt")
    assert (
        problem.message == "the file's name holds the value of $UET_TEST_API_KEY (sk-t…[30 chars])"
    )
    assert SECRET not in report.model_dump_json()


def test_a_diff_unidiff_cannot_read_is_still_scanned_line_by_line() -> None:
    data = f'--- a/x\n+++ b/x\n@@ -1,1 +1,3 @@\n+KEY = "{SECRET}"\n'.encode()
    (hit,) = hits(data)
    assert (hit.path, hit.line_no) == (None, 4)
    report = check(data)
    assert "secret_in_patch" in {p.code for p in report.errors}
    assert SECRET not in report.model_dump_json()


def test_added_lines_keep_the_text_without_the_line_ending() -> None:
    data = new_file("w.txt", "crlf\r", "plain")
    assert list(added_lines(data)) == [
        AddedLine("w.txt", 1, "crlf"),
        AddedLine("w.txt", 2, "plain"),
    ]


def test_secret_in_patch_is_a_policy_code() -> None:
    assert UET_CODES["secret_in_patch"] == "policy"


# -- through a real run ------------------------------------------------------------------------

WRITES_THE_KEY = 'mkdir -p src && printf \'API_KEY = "%s"\\n\' "$UET_TEST_API_KEY" > src/config.py'


def key_phase(**patch_policy: object):  # type: ignore[no-untyped-def]
    return phase(
        defaults={"review": "never"},
        workstreams=[
            {
                "workstream_id": "leaky",
                "execution_request": {"command": WRITES_THE_KEY},
                "patch_policy": patch_policy,
            }
        ],
    )


async def test_a_tool_that_writes_the_workers_api_key_is_quarantined(
    client: Client, settings: Settings, worker: Worker, make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_TEST_API_KEY", SECRET)  # the worker runs in-process: it sees it
    repo: Path = make_repo({"README.md": "hello\n"})
    record = await run_phase(client, settings, run_input(key_phase(), repo))
    assert record.status == PhaseState.FAILED
    leaky = record.workstreams["leaky"]
    assert leaky.status == WorkstreamState.FAILED
    digest = line_sha256(f'API_KEY = "{SECRET}"')
    assert leaky.reason == (
        "patch quarantined: secret_in_patch: src/config.py: line 1: the value of "
        f"$UET_TEST_API_KEY (sk-t…[30 chars]); line_sha256 {digest} "
        "(for patch_policy.secret_allowlist, if this is no secret)"
    )
    report = Path(record.report_dir or "")
    (entry,) = [json.loads(x) for x in (report / "ledger.jsonl").read_text().splitlines()]
    assert entry["state"] == "quarantined"
    assert entry["validation"]["constraints_ok"] is False
    assert [e.split(":")[0] for e in entry["validation"]["errors"]] == ["secret_in_patch"]
    for name in ("ledger.jsonl", "events.jsonl", "run.json"):
        assert SECRET not in (report / name).read_text(), name
    assert SECRET not in record.model_dump_json()
    (quarantined,) = (settings.home / "runs").rglob("*.report.json")
    assert SECRET not in quarantined.read_text()
    # Nothing of it reached the integration branch.
    assert "src/config.py" not in git_out(repo, "log", "--all", "--name-only", "--format=")


async def test_a_phase_can_allow_list_the_line_by_its_hash(
    client: Client, settings: Settings, worker: Worker, make_repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UET_TEST_API_KEY", SECRET)
    repo: Path = make_repo({"README.md": "hello\n"})
    allow = {"path": "src/config.py", "line_sha256": line_sha256(f'API_KEY = "{SECRET}"')}
    spec = key_phase(secret_allowlist=[allow])
    record = await run_phase(client, settings, run_input(spec, repo))
    assert record.status == PhaseState.COMPLETED, record.reason
    assert show(repo, record.head_sha or "", "src/config.py") == f'API_KEY = "{SECRET}"'


async def test_a_well_formed_cloud_credential_is_quarantined(
    client: Client, settings: Settings, worker: Worker, make_repo
) -> None:
    repo: Path = make_repo({"README.md": "hello\n"})
    # Built by the shell, so the phase itself does not spell the key out.
    command = "printf 'aws_access_key_id = AKIA%s\\n' IOSFODNN7EXAMPLE > creds.ini"
    spec = phase(
        defaults={"review": "never"},
        workstreams=[{"workstream_id": "cloud", "execution_request": {"command": command}}],
    )
    record = await run_phase(client, settings, run_input(spec, repo))
    reason = record.workstreams["cloud"].reason or ""
    assert reason.startswith(
        "patch quarantined: secret_in_patch: creds.ini: line 1: AWS Access Key (AKIA…[20 chars])"
    ), reason
    assert AWS_KEY_ID not in (Path(record.report_dir or "") / "events.jsonl").read_text()
