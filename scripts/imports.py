"""The import structure of uet: `python scripts/imports.py`.

Prints the import edges between the top-level folders and files (with how many imports each
edge stands for), then checks the rules the layout depends on, and exits 1 when one is broken:

- no import circle between modules (an import inside a function counts: it is still a cycle
  in the design, only a later one);
- nothing imports ``worker`` or ``starter`` (the entry points stay on top);
- ``schemas`` imports no other project folder (it is the contract);
- ``activities`` imports neither ``workflows`` nor ``runtime`` (side effects know no
  orchestration and no CLI);
- ``workflows`` imports no ``runtime`` (deterministic code knows no CLI).

Tests, benches and scripts are users of the project, not part of its structure: their edges
are printed, not checked.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "workflows", "activities", "runtime")
ENTRY_POINTS = ("worker", "starter")
USERS = ("tests", "bench", "scripts")
#: importer → what it must not import.
FORBIDDEN = {
    "schemas": {"workflows", "activities", "runtime", *ENTRY_POINTS},
    "activities": {"workflows", "runtime", *ENTRY_POINTS},
    "workflows": {"runtime", *ENTRY_POINTS},
    "runtime": set(ENTRY_POINTS),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {}
    for top in (*PACKAGES, *USERS):
        for path in sorted((ROOT / top).rglob("*.py")):
            found[module_name(path)] = path
    for name in ENTRY_POINTS:
        found[name] = ROOT / f"{name}.py"
    return found


def imports_of(path: Path, known: dict[str, Path]) -> list[str]:
    """The project modules ``path`` imports (``from a.b import c`` names ``a.b.c`` when that is a
    module, else ``a.b``)."""
    tree = ast.parse(path.read_text("utf-8"), str(path))
    targets: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                targets.append(full if full in known else node.module)
    return [t for t in targets if t in known or t.split(".")[0] in known]


def top(module: str) -> str:
    return module.split(".")[0]


def main() -> int:
    known = project_modules()
    graph: nx.DiGraph = nx.DiGraph()
    edges: Counter[tuple[str, str]] = Counter()
    for module, path in known.items():
        graph.add_node(module)
        for target in imports_of(path, known):
            target = target if target in known else top(target)
            if target == module:
                continue
            graph.add_edge(module, target)
            if top(module) != top(target):
                edges[top(module), top(target)] += 1
    print("import edges between the top-level folders and files (count of imports):")
    for (source, target), count in sorted(edges.items()):
        print(f"  {source:<10} -> {target:<10} {count:>4}")
    problems = []
    checked = [m for m in graph if top(m) not in USERS]
    for cycle in nx.simple_cycles(graph.subgraph(checked)):
        problems.append("import circle: " + " -> ".join([*cycle, cycle[0]]))
    for source, target in graph.edges:
        if top(target) in FORBIDDEN.get(top(source), set()):
            problems.append(f"upward arrow: {source} imports {target}")
        if top(target) in ENTRY_POINTS and top(source) in USERS:
            problems.append(f"upward arrow: {source} imports {target} (an entry point)")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem{'s' if len(problems) > 1 else ''}")
        return 1
    print("no circle, no upward arrow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
