"""The error engine on a corpus of real failure outputs (tests/error_corpus.py): the same root
cause gets the same signature in another directory at other line numbers, different causes
get different ones; and the pieces it is made of."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from error_corpus import Sample, generate, pairwise

from activities.lib.errors.engine import classify, normalize
from activities.lib.errors.rules import CATEGORIES, RULES

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Sample]:
    return generate(tmp_path_factory.mktemp("corpus"))


def test_same_cause_same_signature_and_different_causes_apart(corpus: list[Sample]) -> None:
    precision, recall, pairs = pairwise(corpus, lambda output: classify(output).signature)
    causes = {s.cause for s in corpus}
    print(
        f"corpus: {len(corpus)} outputs of {len(causes)} causes, {pairs} pairs; "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert len(corpus) >= 90 and len(causes) >= 30
    assert precision >= 0.95 and recall >= 0.95


def test_every_cause_is_classified_into_a_known_category(corpus: list[Sample]) -> None:
    by_cause: dict[str, set[str]] = defaultdict(set)
    for sample in corpus:
        result = classify(sample.output)
        assert result.category in CATEGORIES
        by_cause[sample.cause].add(result.category)
    assert all(len(found) == 1 for found in by_cause.values()), by_cause
    expected = {
        "pytest: test_add fails its assertion": "test_assertion",
        "pytest: test_div divides by zero": "test_error",
        "pytest: a test imports a missing module": "test_error",
        "python: a syntax error": "syntax",
        "python: a missing module": "import",
        "python: a TypeError in total()": "type",
        "python: a file that is not there": "environment",
        "lint: an unused import in the code": "lint",
        "format: a file that needs formatting": "format",
        "mypy: a wrong return type": "type",
        "shell: pytestt is not installed": "environment",
        "shell: a script that is not executable": "permission",
        "git: a merge conflict in notes.txt": "merge_conflict",
    }
    for cause, category in expected.items():
        assert by_cause[cause] == {category}, cause
    assert {r.category for r in RULES} <= set(CATEGORIES)


def test_normalize_removes_what_changes_between_runs() -> None:
    a = normalize(
        'File "/tmp/pytest-of-u/pytest-3/case0/src/pkg/mod.py", line 42, in run\n'
        "at 0x7f3a2b1c9d00 on 2026-12-01T09:08:57.123Z id 01M8RE52DQRRP2063646X2NQTC "
        "port 127.0.0.1:54321 took 0.52s sha 3e6db60df836"
    )
    b = normalize(
        'File "/home/alice/work/other/src/pkg/mod.py", line 7, in run\n'
        "at 0x55d1c0ffee00 on 2025-01-02 10:11:12 id 01J00000000000000000000000 "
        "port 127.0.0.1:8080 took 12s sha 9a8b7c6d5e4f"
    )
    assert a == b
    assert "mod.py" in a and "line <N>" in a and "/tmp" not in a


def test_uets_own_reason_codes_map_directly() -> None:
    assert classify("", code="out_of_scope", detail="src/x.py").category == "policy"
    assert classify("", code="api_error").category == "tool_api"
    missing = classify("", code="gate_command_not_found", detail="pytestt")
    assert missing.category == "environment"
    assert (
        missing.signature == classify("", code="gate_command_not_found", detail="pytestt").signature
    )
    assert missing.signature != classify("", code="gate_command_not_found", detail="ruff").signature


def test_uet_errors_classify_from_a_file_and_stdin(corpus: list[Sample], tmp_path: Path) -> None:
    samples = [s for s in corpus if s.cause == "pytest: test_add fails its assertion"]
    assert len(samples) >= 2
    env = {**os.environ, "UET_HOME": str(tmp_path / "home")}
    first = tmp_path / "first.log"
    first.write_text(samples[0].output)
    by_file = subprocess.run(
        [sys.executable, "-m", "starter", "errors", "classify", str(first), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert by_file.returncode == 0, by_file.stderr
    one = json.loads(by_file.stdout)
    by_stdin = subprocess.run(
        [sys.executable, "-m", "starter", "errors", "classify", "-", "--json"],
        cwd=ROOT,
        env=env,
        input=samples[1].output,
        capture_output=True,
        text=True,
        timeout=60,
    )
    other = json.loads(by_stdin.stdout)
    assert one["signature"] == other["signature"] and one["category"] == "test_assertion"
    assert "tests/test_calc.py::test_add" in one["key"][0]
    human = subprocess.run(
        [sys.executable, "-m", "starter", "errors", "classify", str(first)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert one["signature"] in human.stdout and "test_assertion" in human.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "starter", "errors", "classify", "nope.log"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("uet: nope.log: no such file")
