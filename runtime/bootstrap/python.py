"""Python: how to install the project into a virtualenv in the checkout, and which linter,
type checker and test runner its configuration asks for."""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass, field
from typing import Any

from runtime.bootstrap.model import Gate, Profile
from runtime.bootstrap.repo import RepoFiles

LANG = "python"
VENV = ".venv"
PIP = f"{VENV}/bin/pip"
#: Extras (``[project.optional-dependencies]``) a checkout installs for gates.
EXTRAS = ("dev", "test", "tests", "testing")
#: Dependency groups (PEP 735) a checkout installs for gates.
GROUPS = ("dev", "test", "tests", "testing", "lint", "typing")
#: ``pip install --group`` needs this pip.
PIP_FOR_GROUPS = "pip>=25.1"

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass
class _Install:
    """What setup installs, and the distributions that puts in the virtualenv."""

    commands: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)
    key_files: list[str] = field(default_factory=list)


def detect(files: RepoFiles, profile: Profile) -> None:
    pyproject = files.toml("pyproject.toml") or {}
    setup_cfg = files.ini("setup.cfg")
    tox = files.ini("tox.ini")
    requirements = files.glob("requirements*.txt")
    tests = [p for p in files.anywhere("test_*.py", "*_test.py") if not p.startswith(".")]
    markers = [
        p
        for p in ("pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "pytest.ini", "Pipfile")
        if files.has(p)
    ]
    if not markers and not requirements and not tests:
        return
    profile.language(LANG)
    tool = pyproject.get("tool") if isinstance(pyproject.get("tool"), dict) else {}
    assert isinstance(tool, dict)

    install = _install(files, profile, pyproject, setup_cfg, requirements)
    pytest_seen = _pytest_config(files, profile, tool, setup_cfg, tox, install)
    if pytest_seen and "pytest" not in install.names:
        install.commands.append(f"{PIP} install -q pytest")
        install.names.add("pytest")
        profile.chose(
            LANG, "setup also installs pytest: it is configured but no dependency names it"
        )
    _lint(files, profile, tool, setup_cfg, tox, install)
    _typecheck(files, profile, tool, setup_cfg, install)
    _tests(files, profile, tests, pytest_seen, install)

    if install.commands:
        profile.setup += [f"python3 -m venv {VENV}", *install.commands]
    if install.commands and install.key_files:
        profile.cache.append({"path": VENV, "key": install.key_files})
        profile.chose(
            LANG,
            f"cache {VENV}, keyed by {', '.join(install.key_files)}: a checkout whose files "
            "say the same installs nothing",
        )
    if files.has("uv.lock") or files.has("poetry.lock") or files.has("Pipfile.lock"):
        lock = files.first("uv.lock", "poetry.lock", "Pipfile.lock")
        assert lock is not None
        profile.undecided(
            LANG,
            f"{lock} pins the environment, but setup uses pip and does not read it; "
            "replace the setup with the lock's own installer (e.g. `uv sync --frozen`) "
            "if the worker has it",
            lock,
        )


# -- setup -------------------------------------------------------------------------------------


def _install(
    files: RepoFiles,
    profile: Profile,
    pyproject: dict[str, Any],
    setup_cfg: configparser.RawConfigParser | None,
    requirements: list[str],
) -> _Install:
    out = _Install()
    project = pyproject.get("project") if isinstance(pyproject.get("project"), dict) else None
    build = pyproject.get("build-system")
    poetry = (pyproject.get("tool") or {}).get("poetry") if isinstance(pyproject, dict) else None
    installable: list[str] = []
    if project is not None:
        backend = build.get("build-backend") if isinstance(build, dict) else None
        profile.found(
            LANG,
            f"a PEP 621 project `{project.get('name', '?')}`"
            + (f" built by {backend}" if backend else " (no [build-system]: setuptools)"),
            "pyproject.toml [project]",
        )
        installable.append("pyproject.toml")
        out.names |= _names(project.get("dependencies"))
    elif isinstance(build, dict) or isinstance(poetry, dict):
        what = "[tool.poetry]" if isinstance(poetry, dict) else "[build-system]"
        profile.found(LANG, f"an installable project ({what})", f"pyproject.toml {what}")
        installable.append("pyproject.toml")
    if files.has("setup.py"):
        profile.found(LANG, "a setuptools project", "setup.py")
        installable.append("setup.py")
    if setup_cfg is not None and (
        setup_cfg.has_section("metadata") or setup_cfg.has_section("options")
    ):
        profile.found(LANG, "setuptools metadata", "setup.cfg [metadata]/[options]")
        installable.append("setup.cfg")

    extras, where = _extras(project, setup_cfg)
    chosen_extras = [e for e in extras if e in EXTRAS]
    if extras:
        profile.found(LANG, f"extras: {', '.join(sorted(extras))}", *where)
    for extra in chosen_extras:
        out.names |= extras[extra]

    if installable:
        target = f'".[{",".join(chosen_extras)}]"' if chosen_extras else "."
        command = f"{PIP} install -q -e {target}"
        out.commands.append(command)
        why = (
            f", with the extras {', '.join(chosen_extras)} (what tests and linters need)"
            if chosen_extras
            else " (no dev or test extras declared)"
        )
        profile.chose(LANG, f"setup `{command}`: the project, editable{why}", *installable)

    groups = pyproject.get("dependency-groups")
    if isinstance(groups, dict) and groups:
        profile.found(
            LANG,
            f"dependency groups (PEP 735): {', '.join(sorted(groups))}",
            "pyproject.toml [dependency-groups]",
        )
        chosen_groups = [g for g in groups if g in GROUPS]
        if chosen_groups:
            out.commands.append(f'{PIP} install -q --upgrade "{PIP_FOR_GROUPS}"')
            command = f"{PIP} install -q " + " ".join(f"--group {g}" for g in chosen_groups)
            out.commands.append(command)
            for group in chosen_groups:
                out.names |= _group_names(groups, group, set())
            profile.chose(
                LANG,
                f"setup `{command}` (after upgrading to {PIP_FOR_GROUPS}, the first pip that "
                "installs groups): the groups tests and linters need",
                "pyproject.toml [dependency-groups]",
            )
        else:
            profile.undecided(
                LANG,
                f"none of the dependency groups is one of {', '.join(GROUPS)}; none installed",
                "pyproject.toml [dependency-groups]",
            )

    wanted = [r for r in requirements if "doc" not in r.lower()]
    if requirements:
        profile.found(LANG, f"requirements files: {', '.join(requirements)}", *requirements)
    if wanted:
        command = f"{PIP} install -q " + " ".join(f"-r {r}" for r in wanted)
        out.commands.append(command)
        for name in wanted:
            out.names |= _requirement_names(files.text(name) or "")
        profile.chose(LANG, f"setup `{command}`", *wanted)
    for skipped in sorted(set(requirements) - set(wanted)):
        profile.chose(LANG, f"{skipped} not installed: documentation only", skipped)

    out.key_files = [p for p in ("pyproject.toml", "setup.cfg", "setup.py") if files.has(p)]
    if requirements:
        out.key_files.append("requirements*.txt")
    if not installable and not wanted and not out.commands:
        profile.undecided(
            LANG,
            "nothing to install (no project metadata, no requirements files): the gates run "
            "with the worker's Python",
        )
    return out


def _extras(
    project: dict[str, Any] | None, setup_cfg: configparser.RawConfigParser | None
) -> tuple[dict[str, set[str]], list[str]]:
    """Each extra's distributions, and where the extras are declared."""
    extras: dict[str, set[str]] = {}
    where = []
    optional = (project or {}).get("optional-dependencies")
    if isinstance(optional, dict) and optional:
        extras.update({k: _names(v) for k, v in optional.items()})
        where.append("pyproject.toml [project.optional-dependencies]")
    if setup_cfg is not None and setup_cfg.has_section("options.extras_require"):
        for key, value in setup_cfg.items("options.extras_require"):
            extras[key] = _names(value.splitlines())
        where.append("setup.cfg [options.extras_require]")
    return extras, where


def _group_names(groups: dict[str, Any], name: str, seen: set[str]) -> set[str]:
    if name in seen or not isinstance(groups.get(name), list):
        return set()
    seen.add(name)
    names: set[str] = set()
    for item in groups[name]:
        if isinstance(item, str):
            names |= _names([item])
        elif isinstance(item, dict) and isinstance(item.get("include-group"), str):
            names |= _group_names(groups, item["include-group"], seen)
    return names


def _names(requirements: Any) -> set[str]:
    if not isinstance(requirements, list):
        return set()
    out = set()
    for requirement in requirements:
        match = _NAME.match(str(requirement))
        if match:
            out.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return out


def _requirement_names(text: str) -> set[str]:
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return _names([line for line in lines if line and not line.startswith("-")])


# -- tools -------------------------------------------------------------------------------------


def _pytest_config(
    files: RepoFiles,
    profile: Profile,
    tool: dict[str, Any],
    setup_cfg: configparser.RawConfigParser | None,
    tox: configparser.RawConfigParser | None,
    install: _Install,
) -> list[str]:
    """Where pytest is configured or asked for (empty: nowhere)."""
    seen = []
    pytest_tool = tool.get("pytest")
    if isinstance(pytest_tool, dict):
        section = "ini_options" if "ini_options" in pytest_tool else ""
        seen.append(f"pyproject.toml [tool.pytest{'.' + section if section else ''}]")
    if files.has("pytest.ini"):
        seen.append("pytest.ini")
    if tox is not None and tox.has_section("pytest"):
        seen.append("tox.ini [pytest]")
    if setup_cfg is not None and setup_cfg.has_section("tool:pytest"):
        seen.append("setup.cfg [tool:pytest]")
    seen += [p for p in ("conftest.py", "tests/conftest.py", "test/conftest.py") if files.has(p)]
    if seen:
        profile.found(LANG, "pytest is configured", *seen)
    if "pytest" in install.names:
        seen.append("pytest among the dependencies setup installs")
    return seen


def _lint(
    files: RepoFiles,
    profile: Profile,
    tool: dict[str, Any],
    setup_cfg: configparser.RawConfigParser | None,
    tox: configparser.RawConfigParser | None,
    install: _Install,
) -> None:
    ruff = [f for f in ("ruff.toml", ".ruff.toml") if files.has(f)]
    if isinstance(tool.get("ruff"), dict):
        ruff.insert(0, "pyproject.toml [tool.ruff]")
    flake8 = [".flake8"] if files.has(".flake8") else []
    if setup_cfg is not None and setup_cfg.has_section("flake8"):
        flake8.append("setup.cfg [flake8]")
    if tox is not None and tox.has_section("flake8"):
        flake8.append("tox.ini [flake8]")
    if ruff:
        profile.found(LANG, "ruff is configured", *ruff)
    if flake8:
        profile.found(LANG, "flake8 is configured", *flake8)
    if ruff:
        command, where = _runner("ruff", install, "ruff check .")
        if flake8:
            profile.chose(LANG, "ruff over flake8: both are configured, ruff covers flake8's rules")
        profile.gate(Gate("ruff", "lint", command), LANG, f"ruff is configured; {where}", *ruff)
    elif flake8:
        # flake8 does not skip a virtualenv in the checkout by itself.
        command, where = _runner("flake8", install, f"flake8 --extend-exclude {VENV} .")
        profile.gate(
            Gate("flake8", "lint", command), LANG, f"flake8 is configured; {where}", *flake8
        )
    else:
        profile.undecided(
            LANG,
            "no linter configured (ruff: [tool.ruff] or ruff.toml; flake8: .flake8): no lint gate",
        )


def _typecheck(
    files: RepoFiles,
    profile: Profile,
    tool: dict[str, Any],
    setup_cfg: configparser.RawConfigParser | None,
    install: _Install,
) -> None:
    evidence: list[str] = []
    targets: Any = None
    if isinstance(tool.get("mypy"), dict):
        evidence.append("pyproject.toml [tool.mypy]")
        targets = tool["mypy"].get("files")
    for name in ("mypy.ini", ".mypy.ini"):
        config = files.ini(name)
        if config is not None and config.has_section("mypy"):
            evidence.append(f"{name} [mypy]")
            targets = targets or config.get("mypy", "files", fallback=None)
    if setup_cfg is not None and setup_cfg.has_section("mypy"):
        evidence.append("setup.cfg [mypy]")
        targets = targets or setup_cfg.get("mypy", "files", fallback=None)
    if not evidence:
        return
    profile.found(LANG, "mypy is configured", *evidence)
    args = "" if targets else f" --exclude '^{VENV}/' ."
    if "mypy" in install.names:
        command, where = f"{VENV}/bin/mypy{args}", "mypy is installed by setup"
    elif install.commands:
        command = f"mypy --python-executable {VENV}/bin/python{args}"
        where = (
            "mypy is not among the dependencies: the worker's mypy, checking against the virtualenv"
        )
    else:
        command, where = f"mypy{args}", "the worker's mypy"
    profile.gate(Gate("mypy", "lint", command), LANG, f"mypy is configured; {where}", *evidence)
    if not targets:
        profile.undecided(
            LANG,
            "mypy's configuration names no `files`: the gate checks the whole tree but the "
            "virtualenv; set `files` or edit the command",
            *evidence,
        )


def _runner(name: str, install: _Install, command: str) -> tuple[str, str]:
    """The command from the virtualenv when setup installs the tool, else the worker's."""
    if name in install.names:
        return f"{VENV}/bin/{command}", f"{name} is installed by setup"
    return command, f"{name} is not among the dependencies: the worker's {name} (install it there)"


def _tests(
    files: RepoFiles, profile: Profile, tests: list[str], pytest_seen: list[str], install: _Install
) -> None:
    lint = [
        g.gate_id for g in profile.gates if g.kind == "lint" and g.gate_id in ("ruff", "flake8")
    ]
    folder = next((d for d in ("tests", "test") if any(t.startswith(f"{d}/") for t in tests)), None)
    if tests:
        count = f"{len(tests)} test file{'s' * (len(tests) != 1)}"
        shown = count + (f" under {folder}/" if folder else "")
        profile.found(LANG, shown, *tests[:3])
    python = f"{VENV}/bin/python"
    configured = [s for s in pytest_seen if s.endswith((".ini", ".py", "]"))]
    if configured or (pytest_seen and tests):
        command = f"{python} -m pytest -q"
        profile.gate(
            Gate("pytest", "unit", command, tuple(lint)),
            LANG,
            ("pytest is configured" if configured else "pytest is a dependency and there are tests")
            + (
                ", run by the virtualenv's Python (so it imports the project)"
                if install.commands
                else ""
            ),
            *pytest_seen,
        )
    elif tests:
        package = folder is not None and files.has(f"{folder}/__init__.py")
        runner = python if install.commands else "python3"
        command = (
            f"{runner} -m unittest"
            if folder is None or package
            else f"{runner} -m unittest discover -s {folder}"
        )
        profile.gate(
            Gate("unittest", "unit", command, tuple(lint)),
            LANG,
            "test files but no pytest configuration, conftest.py or pytest dependency: the "
            "standard library's unittest",
            *tests[:1],
        )
    else:
        profile.undecided(LANG, "no tests found (test_*.py, *_test.py): no unit gate")
