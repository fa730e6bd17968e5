"""The verdict on a patch: format, scope and constraints, each problem with a stable code.

Checked on the diff itself, before git ever sees it. Pure functions (the environment whose
secrets a patch must not carry is passed in; the activity passes the worker's own).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from activities.lib.patch_parse import ParsedPatch
from activities.lib.secrets import (
    added_lines,
    format_secrets,
    masked_text,
    scan,
    scan_names,
    secret_env_values,
)
from schemas.globs import matches_any
from schemas.patch import FileChange, PatchArtifact, PatchProblem, ValidationReport
from schemas.spec import FileScope, PatchPolicy

FORMAT_CODES = frozenset({"unparseable", "garbage_between_files"})
CONSTRAINT_CODES = frozenset(
    {
        "deletion_not_allowed",
        "too_many_files",
        "too_many_lines",
        "too_many_hunks",
        "too_large",
        "oscillation",
        "secret_in_patch",
    }
)


@dataclass(frozen=True)
class History:
    """What oscillation is judged against."""

    earlier_attempts: Sequence[PatchArtifact] = ()
    integrated: dict[str, str] = field(default_factory=dict)  # reverse fingerprint → patch_id


def validate(
    parsed: ParsedPatch,
    size: int,
    scope: FileScope,
    policy: PatchPolicy,
    history: History,
    extra_protected: Iterable[str] = (),
    *,
    data: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> ValidationReport:
    """``data``: the raw patch, whose added lines are scanned for secrets (the values of
    ``env``'s secret-named variables, default the worker's environment, and well-known
    credential formats); without it that scan is skipped."""
    env = os.environ if env is None else env
    problems = list(parsed.problems)
    files = parsed.stats.files
    protected = [*policy.protected_paths, *extra_protected]
    for change in files:
        for path in _paths_of(change):
            problems += _path_problems(path, scope, protected)
        if change.symlink and change.kind != "deleted":
            problems += _symlink_problems(change.path, parsed.symlink_targets.get(change.path, ""))
        if change.gitlink:
            problems.append(_p("gitlink", change.path, "submodule entries are not allowed"))
        if change.binary and not policy.allow_binary:
            problems.append(
                _p(
                    "binary_not_allowed",
                    change.path,
                    "binary change; set patch_policy.allow_binary to permit it",
                )
            )
        if change.kind == "deleted" and not policy.allow_deletions:
            problems.append(_p("deletion_not_allowed", change.path, "deletes the file"))
    problems += _limit_problems(parsed, size, policy)
    oscillation = _oscillation_problems(parsed, history)
    # patch_policy.oscillation: allow keeps them on the record as warnings; refuse and review
    # refuse the patch (review: a person decides, see workflows/patch_steps.py).
    allowed = oscillation if policy.oscillation == "allow" else []
    problems += [] if allowed else oscillation
    if data is not None:
        problems += _secret_problems(parsed, data, policy, env)
        # No message repeats a secret: not a hit's, nor a line quoted by the format checks.
        problems = _masked(problems, env)
    codes = {p.code for p in problems}
    return ValidationReport(
        format_ok=not codes & FORMAT_CODES,
        scope_ok=not codes - FORMAT_CODES - CONSTRAINT_CODES,
        constraints_ok=not codes & CONSTRAINT_CODES,
        errors=problems,
        warnings=allowed,
    )


def _p(code: str, path: str | None, message: str) -> PatchProblem:
    return PatchProblem(code=code, path=path, message=message)  # type: ignore[arg-type]


def _paths_of(change: FileChange) -> list[str]:
    return [change.path] + ([change.old_path] if change.old_path else [])


# -- paths -------------------------------------------------------------------------------------


def _path_problems(path: str, scope: FileScope, protected: list[str]) -> list[PatchProblem]:
    unsafe = path_safety_problem(path)
    if unsafe:
        return [unsafe]
    if scope.allowed_paths and not matches_any(path, scope.allowed_paths):
        return [
            _p("out_of_scope", path, f"outside allowed_paths ({', '.join(scope.allowed_paths)})")
        ]
    if matches_any(path, scope.forbidden_paths):
        return [_p("forbidden_path", path, "inside forbidden_paths")]
    if matches_any(path, protected):
        why = "protected (patch_policy.protected_paths); a phase can allow it there"
        return [_p("protected_path", path, why)]
    return []


def path_safety_problem(path: str) -> PatchProblem | None:
    """Paths git must never be handed, whatever the scope says."""
    if not path:
        return _p("empty_path", None, "a file section without a path")
    if path.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", path):
        return _p("absolute_path", path, "absolute path")
    parts = path.split("/")
    if ".." in parts or ".." in path.split("\\"):
        return _p("parent_traversal", path, "'..' leaves the repository")
    for part in parts:
        # .git in any case, and the spellings Windows and macOS treat as the same name.
        if part.lower().rstrip(". ") == ".git" or part.lower() == "git~1":
            return _p("git_dir", path, "writes into the .git directory")
    if "" in parts or "." in parts or "\\" in path:
        return _p("not_normalized", path, "not a normalized relative path")
    return None


def _symlink_problems(path: str, target: str) -> list[PatchProblem]:
    if not target or target.startswith("/") or re.match(r"^[A-Za-z]:", target):
        return [_p("symlink_escape", path, f"symlink to {target!r} leaves the repository")]
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        return [_p("symlink_escape", path, f"symlink to {target!r} leaves the repository")]
    if any(part.lower().rstrip(". ") == ".git" for part in resolved.split("/")):
        return [_p("git_dir", path, f"symlink to {target!r} points into .git")]
    return []


# -- constraints -------------------------------------------------------------------------------


def _limit_problems(parsed: ParsedPatch, size: int, policy: PatchPolicy) -> list[PatchProblem]:
    stats = parsed.stats
    lines = stats.insertions + stats.deletions
    checks = [
        ("too_many_files", stats.files_changed, policy.max_files_changed, "files changed"),
        ("too_many_lines", lines, policy.max_lines_changed, "lines changed"),
        ("too_many_hunks", stats.hunks, policy.max_hunks, "hunks"),
        ("too_large", size, policy.max_patch_bytes, "bytes"),
    ]
    return [
        _p(code, None, f"{value} {what}, more than the {limit} patch_policy allows")
        for code, value, limit, what in checks
        if value > limit
    ]


def _oscillation_problems(parsed: ParsedPatch, history: History) -> list[PatchProblem]:
    undone = history.integrated.get(parsed.fingerprint)
    if undone:
        return [_p("oscillation", None, f"exactly reverses patch {undone}, already integrated")]
    problems = []
    for earlier in history.earlier_attempts:
        if earlier.fingerprint == parsed.fingerprint:
            return [_p("oscillation", None, f"repeats attempt {earlier.attempt} exactly")]
    # A file that goes back to what an earlier attempt made it, after the attempt in between
    # had changed it: the fix loop is going round in circles.
    for change in parsed.stats.files:
        after = change.new_blob
        seen = [_after(a, change.path) for a in history.earlier_attempts]
        if after and len(seen) >= 2 and after in seen[:-1] and seen[-1] != after:
            attempt = history.earlier_attempts[seen.index(after)].attempt
            problems.append(
                _p(
                    "oscillation",
                    change.path,
                    f"returns the file to its content from attempt {attempt}",
                )
            )
    return problems


# -- secrets ----------------------------------------------------------------------------------


def _secret_problems(
    parsed: ParsedPatch, data: bytes, policy: PatchPolicy, env: Mapping[str, str]
) -> list[PatchProblem]:
    paths = [f.path for f in parsed.stats.files]
    hits = scan_names([f.path for f in parsed.stats.files if f.kind != "deleted"], env)
    hits += scan(added_lines(data, paths), env, policy.secret_allowlist)
    return [_p("secret_in_patch", hit.path, hit.describe()) for hit in hits]


def _masked(problems: list[PatchProblem], env: Mapping[str, str]) -> list[PatchProblem]:
    if not problems:
        return problems
    values = list(secret_env_values(env))
    text = "\n".join(f"{p.path or ''} {p.message}" for p in problems)
    values += [value for _, value in format_secrets(text)]
    return [
        p.model_copy(
            update={
                "message": masked_text(p.message, values),
                "path": p.path and masked_text(p.path, values),
            }
        )
        for p in problems
    ]


def _after(artifact: PatchArtifact, path: str) -> str | None:
    for change in artifact.stats.files:
        if change.path == path:
            return change.new_blob
    return None
