"""What the workflow sandbox would refuse, refused in the source of every module in
workflows/: uet's workflows run outside the SDK's sandbox (workflows/__init__.py says why), so
nothing checks them at run time — this does, before they ship, and the recorded histories'
replay (tests/test_replay.py) checks what they decide.

A workflow module may import only deterministic things (the standard library's pure parts,
temporalio, uet's schemas, its activities' definitions and its own workflow modules), never
reads the clock, the environment, files or randomness except through ``workflow.*``, keeps no
state in module globals, and only the modules in ``workflows.DEFINITIONS`` define workflows.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import workflows

ROOT = Path(workflows.__file__).parent
MODULES = sorted(ROOT.glob("*.py"))
#: Top-level packages a workflow module may import.
ALLOWED = {
    "__future__",
    "asyncio",
    "collections",
    "contextlib",
    "dataclasses",
    "datetime",
    "typing",
    "temporalio",
    "workflows",
    "schemas",
    "activities",  # inside imports_passed_through: activity definitions and pure helpers
    "ulid",  # its from_bytes only: workflows/ids.py feeds it workflow time and randomness
}
#: Attribute calls that read the world: the clock, randomness, the environment, files.
FORBIDDEN_CALLS = {
    "now",
    "utcnow",
    "today",
    "time",
    "time_ns",
    "monotonic",
    "perf_counter",
    "urandom",
    "getenv",
    "random",
    "uuid4",
    "read_text",
    "write_text",
    "read_bytes",
    "open",
}
#: Functions that may be called through ``workflow.``: the SDK's deterministic versions.
WORKFLOW_API = {"now", "time", "time_ns", "random", "uuid4"}


def names(path: Path) -> list[tuple[int, str]]:
    """(line, problem) for each thing the sandbox would not allow in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] not in ALLOWED:
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] not in ALLOWED:
                found.append((node.lineno, f"from {node.module} import …"))
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in ("open", "print", "input", "exec"):
                found.append((node.lineno, f"{func.id}()"))
            elif isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_CALLS:
                owner = func.value
                through_sdk = isinstance(owner, ast.Name) and owner.id == "workflow"
                if not (through_sdk and func.attr in WORKFLOW_API):
                    found.append((node.lineno, f".{func.attr}()"))
        elif isinstance(node, ast.Global | ast.Nonlocal):
            found.append((node.lineno, "global state"))
        elif isinstance(node, ast.ClassDef):
            # A class attribute is shared by every workflow run in the process.
            for item in node.body:
                value = item.value if isinstance(item, ast.Assign | ast.AnnAssign) else None
                if value is not None and _mutable(value):
                    found.append((item.lineno, f"mutable class attribute in {node.name}"))
    for item in tree.body:  # module globals: constants (UPPER_CASE, never changed) only
        targets = item.targets if isinstance(item, ast.Assign) else []
        if isinstance(item, ast.AnnAssign):
            targets = [item.target]
        value = item.value if isinstance(item, ast.Assign | ast.AnnAssign) else None
        for target in targets:
            named = isinstance(target, ast.Name) and not target.id.lstrip("_").isupper()
            if named and value is not None and _mutable(value):
                found.append((item.lineno, f"mutable module global {ast.unparse(target)}"))
    return found


def _mutable(value: ast.expr) -> bool:
    if isinstance(value, ast.List | ast.Dict | ast.Set | ast.ListComp | ast.DictComp):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in ("list", "dict", "set", "defaultdict", "Counter")
    )


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_a_workflow_module_reads_nothing_but_what_it_is_given(path: Path) -> None:
    assert names(path) == []


def test_only_the_definitions_define_workflows() -> None:
    defining = {
        path.stem
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        and any(ast.unparse(d).startswith("workflow.defn") for d in node.decorator_list)
    }
    assert defining == set(workflows.DEFINITIONS)


def test_no_definition_asks_for_the_sandbox() -> None:
    """Each says ``sandboxed=SANDBOXED``: one place decides, and this guard is why it may."""
    plain = [
        f"{path.stem}:{node.lineno}"
        for path in MODULES
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef)
        for d in node.decorator_list
        if ast.unparse(d).startswith("workflow.defn")
        and ast.unparse(d) != "workflow.defn(sandboxed=SANDBOXED)"
    ]
    assert plain == []


def test_the_guard_catches_what_it_is_for(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nimport time\nfrom datetime import datetime\n"
        "cache = {}\nclass C:\n    seen: list[str] = []\n"
        "def f():\n    global X\n    return datetime.now(), time.time(), open('x')\n"
    )
    problems = {p for _, p in names(bad)}
    assert problems == {
        "import os",
        "import time",
        ".now()",
        ".time()",
        "open()",
        "global state",
        "mutable module global cache",
        "mutable class attribute in C",
    }
