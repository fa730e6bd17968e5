"""`uet init`: a repository's project profile — languages, how a checkout is set up, which
gates prove a change — found from the files git tracks, and a starter phase file made of it.

Every finding names its evidence (a file, or a section of one), every choice says why, and
what could not be decided is said as such: the report is the header of the phase file and,
with ``--json``, a list of ``{kind, language, message, evidence}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from runtime.bootstrap import native, node, python
from runtime.bootstrap.model import Gate, Note, Profile
from runtime.bootstrap.render import render_yaml
from runtime.bootstrap.repo import RepoFiles

__all__ = ["Gate", "Note", "Profile", "inspect", "render_yaml", "starter_phase"]

#: In the order their setup commands and gates appear in the phase.
DETECTORS = (
    python.detect,
    node.detect,
    native.detect_go,
    native.detect_rust,
    native.detect_c,
    native.detect_make,  # last: only where no language gate covers a target
)


def inspect(directory: str) -> Profile:
    """The profile of the git repository at (or around) ``directory``; UserError when it is
    not one."""
    files = RepoFiles.open(directory)
    profile = Profile(files.root)
    if Path(directory).expanduser().resolve() != files.root:
        profile.found(
            None,
            f"{directory} is inside the repository {files.root}: inspected its top level, "
            "where every checkout (and every gate) starts",
        )
    for detect in DETECTORS:
        detect(files, profile)
    for path, problem in sorted(files.unreadable.items()):
        profile.undecided(None, f"{path} is {problem}: not read", path)
    _include(files, profile)
    if not profile.languages:
        profile.undecided(
            None,
            "no language recognised (pyproject.toml, setup.py, requirements*.txt, package.json, "
            "go.mod, Cargo.toml, Makefile): no setup and no gates",
        )
    elif not profile.gates:
        profile.undecided(None, "no gate found: add acceptance gates before running the phase")
    return profile


def _include(files: RepoFiles, profile: Profile) -> None:
    local = files.ignored_local_files()
    if not local:
        return
    profile.include += local
    profile.found(None, f"gitignored local files in the work tree: {', '.join(local)}", *local)
    profile.chose(
        None,
        "workspace.include copies them into every checkout (gates and tools need them); they "
        "never become part of a patch, but the tool can read them: remove any it must not see",
        *local,
    )


def phase_id_for(profile: Profile) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", profile.root.name).strip("-._").upper()
    return f"PH-{name or 'REPO'}"[:100]


def starter_phase(profile: Profile) -> dict[str, Any]:
    """The phase as a plain mapping (what the YAML says)."""
    workspace: dict[str, Any] = {}
    if profile.setup:
        workspace["setup"] = list(profile.setup)
    if profile.cache:
        workspace["cache"] = [dict(entry) for entry in profile.cache]
    if profile.include:
        workspace["include"] = list(profile.include)
    defaults: dict[str, Any] = {}
    if workspace:
        defaults["workspace"] = workspace
    if profile.gates:
        defaults["acceptance_criteria"] = {"gates": [gate.spec() for gate in profile.gates]}
    return {
        "phase_id": phase_id_for(profile),
        "title": f"Starter phase for {profile.root.name}",
        "max_parallel": 4,
        "defaults": defaults,
        "workstreams": [
            {
                "workstream_id": "ws-example",
                "title": "An example workstream: replace it with your own",
                "execution_request": {
                    "tool_id": "claude",
                    "prompt": "TODO: say what to change and where, and what the gates will "
                    "check. Replace this workstream with your own.",
                },
                "review": "on_failure",
            }
        ],
    }
