"""A corpus of real failure outputs for the error engine: each root cause produced by running
the real tool (python, pytest, unittest, ruff, flake8, mypy, git, the shell, cargo) several
times, in different directories, with the failing line at different line numbers and with
different unrelated names around it. Tools this machine cannot run (tsc, jest, go) come from
captured samples in tests/error_samples/ (``<cause>--<n>.txt``).

    python tests/error_corpus.py DIR      # write the corpus to DIR (one file per output)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent / "error_samples"
VARIANTS = 3


@dataclass(frozen=True)
class Sample:
    cause: str
    source: str  # what produced it: the command, or the sample file
    output: str


Build = Callable[[Path, int], list[str]]  # (work dir, variant) -> the command to run there


def _write(path: Path, text: str, pad: int = 0) -> None:
    """``text`` with ``pad`` comment lines first: the failure moves to another line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lead = "".join(f"# padding line {n}\n" for n in range(pad))
    path.write_text(lead + textwrap.dedent(text).lstrip("\n"))


def _pad(v: int) -> int:
    return 3 * v + v * v  # 0, 4, 10


# -- the causes ---------------------------------------------------------------------------------

CALC = """
def add(a, b):
    return a + b


def sub(a, b):
    return a - b + 1  # the bug


def div(a, b):
    return a / b
"""


def pytest_case(test_body: str, name: str = "test_calc.py") -> Build:
    def build(d: Path, v: int) -> list[str]:
        _write(d / "calc.py", CALC, _pad(v))
        head = f"from calc import add, sub, div\nUNRELATED_{v} = {v}\nVALUE = {v}\n\n\n"
        _write(d / "tests" / name, head + test_body, _pad(v))
        (d / "tests" / "__init__.py").touch()
        (d / "conftest.py").write_text(
            "import sys, os\nsys.path.insert(0, os.path.dirname(__file__))\n"
        )
        return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]

    return build


def script_case(body: str, name: str = "tool.py") -> Build:
    def build(d: Path, v: int) -> list[str]:
        _write(d / name, f"helper_{v} = {v * 7}\n\n\n{body}", _pad(v))
        return [sys.executable, name]

    return build


def unittest_case(body: str) -> Build:
    def build(d: Path, v: int) -> list[str]:
        _write(d / "test_things.py", f"import unittest\nOTHER_{v} = {v}\n\n\n{body}", _pad(v))
        return [sys.executable, "-m", "unittest", "test_things"]

    return build


def lint_case(tool: list[str], body: str, name: str = "src/mod.py") -> Build:
    def build(d: Path, v: int) -> list[str]:
        _write(d / name, f'"""Module {v}."""\n{body}', _pad(v))
        return [*tool, name]

    return build


def mypy_case(body: str) -> Build:
    def build(d: Path, v: int) -> list[str]:
        _write(d / "typed.py", f"VALUE_{v}: int = {v}\n\n\n{body}", _pad(v))
        return [sys.executable, "-m", "mypy", "--no-incremental", "--no-error-summary", "typed.py"]

    return build


def shell_case(command: str) -> Build:
    def build(d: Path, v: int) -> list[str]:
        (d / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (d / "run.sh").chmod(0o644)
        return ["/bin/sh", "-c", f"true {v}; {command}"]

    return build


def _git(d: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=c", "-c", "user.email=c@c", "-c", "commit.gpgSign=false", *args],
        cwd=d, check=True, capture_output=True,
    )  # fmt: skip


def git_conflict(d: Path, v: int) -> list[str]:
    _git(d, "init", "-q", "-b", "main")
    _write(d / "notes.txt", "title\nline two\n", _pad(v))
    _git(d, "add", "-A")
    _git(d, "commit", "-qm", "base")
    _git(d, "checkout", "-qb", f"side-{v}")
    (d / "notes.txt").write_text((d / "notes.txt").read_text().replace("line two", "side"))
    _git(d, "commit", "-qam", "side")
    _git(d, "checkout", "-q", "main")
    (d / "notes.txt").write_text((d / "notes.txt").read_text().replace("line two", "main"))
    _git(d, "commit", "-qam", "main")
    return ["git", "-c", "user.name=c", "-c", "user.email=c@c", "merge", f"side-{v}"]


def git_apply(d: Path, v: int) -> list[str]:
    _git(d, "init", "-q", "-b", "main")
    _write(d / "config.ini", "[core]\nname = real\n", _pad(v))
    patch = (
        "--- a/config.ini\n+++ b/config.ini\n@@ -1,2 +1,2 @@\n [core]\n-name = other\n+name = new\n"
    )
    (d / "change.diff").write_text(patch)
    return ["git", "apply", "change.diff"]


def cargo_case(body: str) -> Build:
    def build(d: Path, v: int) -> list[str]:
        (d / "Cargo.toml").write_text(
            f'[package]\nname = "crate{v}"\nversion = "0.1.0"\nedition = "2021"\n'
        )
        lead = "".join(f"// padding {n}\n" for n in range(_pad(v)))
        (d / "src").mkdir(exist_ok=True)
        (d / "src" / "main.rs").write_text(lead + textwrap.dedent(body).lstrip("\n"))
        return ["cargo", "build", "--offline", "--quiet"]

    return build


#: (root cause, how to produce it): a cause may be produced by several tools.
CASES: list[tuple[str, Build]] = [
    # The expected value differs between variants: still the same failing test.
    (
        "pytest: test_add fails its assertion",
        pytest_case("def test_add():\n    assert add(1, 2) == 4 + VALUE\n"),
    ),
    (
        "pytest: test_sub fails its assertion",
        pytest_case("def test_sub():\n    assert sub(3, 1) == 2\n"),
    ),
    (
        "pytest: test_div divides by zero",
        pytest_case("def test_div():\n    assert div(1, 0) == 0\n"),
    ),
    (
        "pytest: a test imports a missing module",
        pytest_case(
            "import no_such_module_xyz\n\n\ndef test_x():\n    assert True\n", "test_imports.py"
        ),
    ),
    (
        "pytest: code under test uses an undefined name",
        pytest_case("def test_name():\n    assert add(undefined_thing, 1) == 1\n", "test_names.py"),
    ),
    ("python: a syntax error", script_case("def broken(:\n    pass\n")),
    ("python: an indentation error", script_case("def f():\nreturn 1\n")),
    ("python: a missing module", script_case("import requests_that_are_not_there\n")),
    (
        "python: a KeyError in lookup()",
        script_case(
            "def lookup(table):\n    return table['missing']\n\n\nlookup({'present': 1})\n"
        ),
    ),
    (
        "python: the same KeyError in fetch()",
        script_case("def fetch(table):\n    return table['missing']\n\n\nfetch({'present': 2})\n"),
    ),
    (
        "python: an IndexError in first()",
        script_case("def first(items):\n    return items[0]\n\n\nfirst([])\n"),
    ),
    (
        "python: a TypeError in total()",
        script_case("def total(items):\n    return sum(items) + 'x'\n\n\ntotal([1, 2])\n"),
    ),
    ("python: a file that is not there", script_case("open('data-that-is-missing.txt').read()\n")),
    (
        "unittest: test_mul fails",
        unittest_case(
            "class T(unittest.TestCase):\n    def test_mul(self):\n        self.assertEqual(2 * 2, 5)\n"
        ),
    ),
    (
        "unittest: test_parse raises ValueError",
        unittest_case(
            "class T(unittest.TestCase):\n    def test_parse(self):\n        int('not a number')\n"
        ),
    ),
    (
        "lint: an unused import in the code",
        lint_case(["ruff", "check", "--no-cache"], "import os\n"),
    ),
    (
        "lint: an unused import in the code",
        lint_case([sys.executable, "-m", "flake8"], "import os\n"),
    ),
    (
        "lint: an unused import in a test",
        lint_case(["ruff", "check", "--no-cache"], "import os\n", "tests/test_mod.py"),
    ),
    (
        "lint: an unused local variable",
        lint_case(["ruff", "check", "--no-cache"], "\n\ndef f():\n    unused = 1\n    return 2\n"),
    ),
    (
        "format: a file that needs formatting",
        lint_case(["ruff", "format", "--check", "--no-cache"], "x = {  'a':1,'b' : 2 }\n"),
    ),
    ("mypy: a wrong return type", mypy_case("def name() -> str:\n    return 1\n")),
    (
        "mypy: a wrong argument type",
        mypy_case("def f(x: int) -> int:\n    return x\n\n\nf('text')\n"),
    ),
    ("mypy: an undefined name", mypy_case("def f() -> int:\n    return undefined_name\n")),
    ("shell: pytestt is not installed", shell_case("pytestt -q")),
    ("shell: ruffx is not installed", shell_case("ruffx check .")),
    ("shell: a script that is not executable", shell_case("./run.sh")),
    ("git: a merge conflict in notes.txt", git_conflict),
    ("git: a patch that does not apply to config.ini", git_apply),
    (
        "cargo: mismatched types",
        cargo_case('fn main() {\n    let x: i32 = "text";\n    println!("{}", x);\n}\n'),
    ),
    ("cargo: an unknown name", cargo_case('fn main() {\n    println!("{}", missing_value);\n}\n')),
]


def available(command: list[str]) -> bool:
    """Whether the tool can run here (cargo may be missing: then its causes are left out)."""
    return shutil.which(command[0]) is not None


def generate(root: Path) -> list[Sample]:
    """Every cause, VARIANTS times, each in its own directory."""
    samples = []
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1", "LC_ALL": "C"}
    env.pop("PYTEST_ADDOPTS", None)
    for number, (cause, build) in enumerate(CASES):
        for v in range(VARIANTS):
            d = root / f"c{number:02d}-v{v}-{'xyz'[v]}{v * 13}"
            d.mkdir(parents=True)
            command = build(d, v)
            if not available(command):
                break
            run = subprocess.run(
                command, cwd=d, env=env, capture_output=True, text=True, timeout=120
            )
            assert run.returncode != 0, f"{cause}: {command} did not fail\n{run.stdout}{run.stderr}"
            samples.append(Sample(cause, " ".join(command), run.stdout + run.stderr))
    return samples + captured()


def captured() -> list[Sample]:
    """Outputs of tools that cannot run here, as they print them (tests/error_samples/)."""
    return [
        Sample(path.stem.split("--")[0].replace("_", " "), f"sample {path.name}", path.read_text())
        for path in sorted(SAMPLES.glob("*.txt"))
    ]


def pairwise(samples: list[Sample], signature: Callable[[str], str]) -> tuple[float, float, int]:
    """Precision and recall of "same signature ⇔ same root cause" over every pair, and the
    number of pairs."""
    sigs = [signature(s.output) for s in samples]
    tp = fp = fn = 0
    for i in range(len(samples)):
        for j in range(i + 1, len(samples)):
            same_cause = samples[i].cause == samples[j].cause
            same_sig = sigs[i] == sigs[j]
            tp += same_cause and same_sig
            fp += same_sig and not same_cause
            fn += same_cause and not same_sig
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    pairs = len(samples) * (len(samples) - 1) // 2
    return precision, recall, pairs


if __name__ == "__main__":
    out = Path(sys.argv[1])
    for n, sample in enumerate(generate(out / "work")):
        (out / f"{n:03d}.txt").write_text(f"# {sample.cause}\n# {sample.source}\n{sample.output}")
