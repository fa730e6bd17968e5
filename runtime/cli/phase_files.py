"""`uet validate`, `uet plan` and `uet convert`: phase files before anything runs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from activities.lib.planning import plan_phase
from activities.lib.telemetry.history import read_learned
from activities.lib.telemetry.suggestions import suggest
from runtime.cli.base import SPEC_HELP, command
from runtime.errors import ExitCode, UserError
from runtime.legacy import DEFAULT_PHASE_ID, LegacyFormatError
from runtime.legacy import convert as convert_legacy
from runtime.legacy.render import render_yaml
from runtime.output import emit_json
from runtime.settings import Settings
from runtime.specfile import load_spec
from schemas.spec import PhaseSpec


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = command(
        sub,
        "validate",
        validate,
        "check a phase file; every problem, one per line",
        ["uet validate phase.yaml"],
    )
    s.add_argument("spec", metavar="SPEC", help=SPEC_HELP)

    s = command(
        sub,
        "plan",
        plan,
        "waves, critical path and speedup bound of a phase",
        [
            "uet plan phase.yaml",
            "uet plan phase.yaml --json | jq .waves",
            "uet plan --from-issues acme/app --label uet -o phase.yaml",
        ],
    )
    s.add_argument("spec", metavar="SPEC", nargs="?", help=SPEC_HELP)
    s.add_argument(
        "--json", dest="as_json", action="store_true", help="print the plan as JSON on stdout"
    )
    issues = s.add_argument_group("a phase from a forge's open issues")
    issues.add_argument("--from-issues", metavar="OWNER/REPO", help="the repository's issues")
    issues.add_argument("--label", help="only issues with this label")
    issues.add_argument("--milestone", help="only issues of this milestone")
    issues.add_argument("-o", "--output", metavar="FILE", help="write the phase here")
    issues.add_argument(
        "--forge", dest="kind", choices=["github", "gitlab", "gitea"], help="the forge (github)"
    )
    issues.add_argument("--api-url", metavar="URL", help="the forge's API root")
    issues.add_argument("--token-env", metavar="NAME", help="variable holding the token")

    s = command(
        sub,
        "convert",
        convert,
        "legacy UET workstream JSON files → one phase file (YAML)",
        [
            "uet convert legacy/ -o phase.yaml",
            "uet convert a.json b.json -o phase.yaml --phase-id PH-7 --force",
        ],
    )
    s.add_argument(
        "legacy",
        nargs="+",
        metavar="LEGACY_DIR_OR_FILE",
        help="legacy JSON files, or directories (their *.json, sorted)",
    )
    s.add_argument("-o", "--output", required=True, help="the phase file to write (.yaml)")
    s.add_argument("--phase-id", help="default: the files' phase_id or name, else PH-LEGACY")
    s.add_argument("--title", help="default: the files' title, name or description")
    s.add_argument("--force", action="store_true", help="replace an existing output file")


def validate(spec: str) -> int:
    phase = load_spec(spec).spec
    # What the run's plan would learn from earlier runs (nothing without a database).
    learned = read_learned(Settings.from_env().home, phase)
    the_plan = plan_phase(phase, learned.durations)
    print(
        f"{spec}: ok — phase {phase.phase_id}, {len(phase.workstreams)} workstreams in "
        f"{len(the_plan.waves)} waves, max_parallel {phase.max_parallel}"
    )
    if the_plan.learned_durations:
        print(
            "learned durations (no estimated_duration_s): "
            + ", ".join(f"{w} {s:.1f}s" for w, s in sorted(the_plan.learned_durations.items()))
        )
    _print_suggestions(phase)
    return ExitCode.COMPLETED


def plan(
    spec: str | None,
    as_json: bool,
    from_issues: str | None = None,
    label: str | None = None,
    milestone: str | None = None,
    output: str | None = None,
    kind: str | None = None,
    api_url: str | None = None,
    token_env: str | None = None,
) -> int:
    if from_issues is not None:
        if spec is not None:
            raise UserError("give a phase file or --from-issues, not both")
        from runtime.cli.forge import plan_from_issues

        return asyncio.run(
            plan_from_issues(from_issues, label, milestone, output, kind, api_url, token_env)
        )
    if spec is None:
        raise UserError("uet plan needs a phase file (or --from-issues OWNER/REPO)")
    phase = load_spec(spec).spec
    # What the run's plan would learn from earlier runs (nothing without a database).
    learned = read_learned(Settings.from_env().home, phase)
    the_plan = plan_phase(phase, learned.durations)
    if as_json:
        emit_json({**the_plan.model_dump(mode="json"), "suggestions": _suggestions(phase)})
        return ExitCode.COMPLETED
    weighted = any(ws.estimated_duration_s for ws in phase.workstreams) or bool(
        the_plan.learned_durations
    )
    unit = "s" if weighted else " workstreams"
    print(
        f"{phase.phase_id}: {len(phase.workstreams)} workstreams, {len(the_plan.waves)} waves, "
        f"max_parallel {phase.max_parallel}"
    )
    for number, wave in enumerate(the_plan.waves, start=1):
        print(f"  wave {number}: {', '.join(wave)}")
    print(
        f"critical path: {' -> '.join(the_plan.critical_path)} ({the_plan.critical_path_s:g}{unit})"
    )
    print(
        f"speedup bound: {the_plan.speedup_bound:g}x over running them one by one "
        f"(total {the_plan.total_work_s:g}{unit})"
    )
    _print_suggestions(phase)
    return ExitCode.COMPLETED


def _suggestions(phase: PhaseSpec) -> list[str]:
    """What the history of earlier runs suggests (activities/lib/telemetry/suggestions.py):
    never an error, never a change of exit code; nothing without a telemetry database."""
    try:
        return suggest(phase, Settings.from_env().home)
    except Exception:
        return []


def _print_suggestions(phase: PhaseSpec) -> None:
    for line in _suggestions(phase):
        print(line)


def convert(
    legacy: list[str],
    output: str,
    phase_id: str | None = None,
    title: str | None = None,
    force: bool = False,
) -> int:
    """Convert, write ``output``, report what did not map (stderr) and validate the result.

    Exit code 0 when the written spec validates, 2 when it does not (the file is kept, so it can
    be fixed); input problems (missing or malformed files, an existing output without ``force``)
    raise UserError.
    """
    sources = _inputs(legacy)
    out = Path(output)
    _check_output(out, sources, force)
    bundles = [(str(path), _read_json(path)) for path in sources]
    by_name = {str(path): path for path in sources}

    def rebase(source: str, patch_file: str) -> str:
        """A patch file named relative to its legacy file, renamed relative to the output."""
        if os.path.isabs(patch_file):
            return patch_file
        target = os.path.abspath(by_name[source].parent / patch_file)
        return Path(os.path.relpath(target, os.path.abspath(out.parent))).as_posix()

    try:
        conversion = convert_legacy(bundles, phase_id, title, rebase_path=rebase)
    except LegacyFormatError as exc:
        raise UserError(str(exc)) from None
    if not conversion.phase["workstreams"]:
        raise UserError(
            f"no workstreams found in {', '.join(str(p) for p in sources)}; nothing written"
        )
    _write(out, render_yaml(conversion, [str(p) for p in sources]))

    for note in conversion.unmapped:
        print(note.line(), file=sys.stderr)
    new_id = conversion.phase["phase_id"]
    default = " (the default; --phase-id names it)" if new_id == DEFAULT_PHASE_ID else ""
    print(
        f"wrote {out}: phase {new_id}{default}, "
        f"{_plural(len(conversion.phase['workstreams']), 'workstream')} from "
        f"{_plural(len(sources), 'legacy file')}; {_notes_summary(len(conversion.unmapped))}"
    )
    try:
        loaded = load_spec(out)
    except UserError as error:
        for line in error.lines:
            print(f"uet: {line}", file=sys.stderr)
        print(
            f"uet: {out} was written but is not a valid phase spec; fix the legacy files and "
            "convert again (--force), or edit the YAML",
            file=sys.stderr,
        )
        return ExitCode.INVALID_INPUT
    spec = loaded.spec
    print(f"{out}: ok — phase {spec.phase_id}, {_plural(len(spec.workstreams), 'workstream')}")
    return ExitCode.COMPLETED


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' * (count != 1)}"


def _notes_summary(count: int) -> str:
    if not count:
        return "every legacy field was converted"
    what = "field was" if count == 1 else "fields were"
    return f"{count} {what} not converted as written (listed above and in the file's header)"


# -- input -------------------------------------------------------------------------------------


def _inputs(paths: Iterable[str]) -> list[Path]:
    """Every legacy file: files as given, directories as their ``*.json`` files (sorted)."""
    found: list[Path] = []
    seen: set[str] = set()
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.json") if p.is_file())
            if not files:
                raise UserError(f"{path}: no *.json files in this directory")
        elif path.is_file():
            files = [path]
        else:
            raise UserError(f"{path}: no such file or directory")
        for file in files:
            key = os.path.realpath(file)
            if key not in seen:
                seen.add(key)
                found.append(file)
    if not found:
        raise UserError("no legacy files given")
    return found


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the file: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None


def _check_output(out: Path, sources: list[Path], force: bool) -> None:
    if out.suffix.lower() not in (".yaml", ".yml"):
        raise UserError(f"{out}: the output is a YAML phase file; name it *.yaml or *.yml")
    if not out.parent.is_dir():
        raise UserError(f"{out}: the directory {out.parent} does not exist")
    if out.exists() or out.is_symlink():
        if any(os.path.realpath(out) == os.path.realpath(s) for s in sources):
            raise UserError(f"{out}: is one of the legacy files being converted")
        if not force:
            raise UserError(f"{out} exists; pass --force to replace it")
        if out.is_dir():
            raise UserError(f"{out}: is a directory")


def _write(out: Path, text: str) -> None:
    """Write whole or not at all: a temporary file in the same directory, then a rename."""
    fd, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temp, out)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


# -- YAML ------------------------------------------------------------------------------------
