"""`uet init`: inspect a repository and write a starter phase file (its workspace setup,
caches, local files and gates), with a report of what was found, chosen and left open."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from runtime.bootstrap import inspect, render_yaml, starter_phase
from runtime.cli.base import command
from runtime.errors import ExitCode, UserError
from runtime.output import emit_json
from runtime.specfile import load_spec


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "init",
        init,
        "inspect a repository and write a starter phase file (setup, caches, gates)",
        [
            "uet init --repo ./myrepo -o phase.yaml",
            "uet init > phase.yaml",
            "uet init --repo ./myrepo --json | jq .report",
        ],
    )
    s.add_argument(
        "--repo",
        default=".",
        metavar="DIR",
        help="the git repository to inspect (default: the current directory)",
    )
    s.add_argument(
        "-o",
        "--output",
        metavar="FILE.yaml",
        help="write the phase file here (default: print it on stdout)",
    )
    s.add_argument(
        "--json",
        dest="as_json",
        action="store_true",
        help='print {"phase", "report", "languages", "output"} on stdout',
    )
    s.add_argument("--force", action="store_true", help="replace an existing output file")


def init(repo: str, output: str | None, as_json: bool = False, force: bool = False) -> int:
    """Inspect, build the phase, check it as `uet validate` would, then write it (or print
    it); the report goes to stderr."""
    out = Path(output) if output else None
    if out is not None:
        _check_output(out, force)
    profile = inspect(repo)
    phase = starter_phase(profile)
    text = render_yaml(profile, phase)
    _validated(text, out)

    for note in profile.notes:
        print(note.line(), file=sys.stderr)
    if out is not None:
        _write(out, text)
        print(
            f"wrote {out}: phase {phase['phase_id']} for {profile.root} "
            f"({', '.join(profile.languages) or 'no language recognised'}); "
            f"`uet validate {out}` checks it, `uet run {out} --repo {profile.root}` runs it",
            file=sys.stderr,
        )
    if as_json:
        emit_json(
            {
                "phase": phase,
                "report": [note.as_json() for note in profile.notes],
                "languages": profile.languages,
                "output": str(out) if out is not None else None,
            }
        )
    elif out is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    return ExitCode.COMPLETED


def _check_output(out: Path, force: bool) -> None:
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(f"{out}: the output is a YAML phase file; name it *.yaml or *.yml")
    if not out.parent.is_dir():
        raise UserError(f"{out}: the directory {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"{out}: is a directory")
    if (out.exists() or out.is_symlink()) and not force:
        raise UserError(f"{out} exists; pass --force to replace it")


def _validated(text: str, out: Path | None) -> None:
    """The phase read back as `uet validate` reads it: a starter that does not validate is
    a bug in uet init, never written."""
    folder = out.parent if out is not None else Path(tempfile.gettempdir())
    fd, temp = tempfile.mkstemp(prefix=".uet-init-", suffix=".yaml", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_spec(temp)
    except UserError as error:
        raise UserError(
            "uet init made a phase that does not validate (a bug in uet init); nothing written:",
            *error.lines,
        ) from None
    finally:
        Path(temp).unlink(missing_ok=True)


def _write(out: Path, text: str) -> None:
    """Whole or not at all: a temporary file beside it, then a rename."""
    fd, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
