"""Patch validation throughput on a large real diff.

    python bench/patch_validation.py [--files 400] [--lines 2000] [--repeat 3]

Builds a scratch repository, rewrites every tenth line of every file, captures the change the
way uet captures a tool's change (git diff --binary --full-index), then times uet's parse +
validate against `git apply --check` of the same patch. Prints MB/s and the ratio.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from activities.lib.patch_parse import parse_patch
from activities.lib.patch_policy import History, validate
from schemas.spec import FileScope, PatchPolicy


def git(repo: Path, *args: str, input: bytes | None = None) -> bytes:
    return subprocess.run(
        [
            "git",
            "-c",
            "user.name=b",
            "-c",
            "user.email=b@b",
            "-c",
            "core.hooksPath=/dev/null",
            *args,
        ],
        cwd=repo,
        check=True,
        capture_output=True,
        input=input,
    ).stdout


def make_patch(root: Path, files: int, lines: int) -> tuple[Path, bytes]:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for f in range(files):
        path = repo / "src" / f"pkg{f % 20}" / f"module_{f}.py"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(f"value_{f}_{n} = compute({n}, 'original text')\n" for n in range(lines))
        )
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    for path in (repo / "src").rglob("*.py"):
        text = path.read_text().splitlines(keepends=True)
        for n in range(0, len(text), 10):
            text[n] = text[n].replace("original", "rewritten")
        path.write_text("".join(text))
    git(repo, "add", "-A")
    patch = git(repo, "diff", "--cached", "--binary", "--full-index", "--no-renames", "HEAD")
    git(repo, "reset", "-q", "--hard")
    return repo, patch


def best_of(repeat: int, fn) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo, patch = make_patch(Path(tmp), args.files, args.lines)
        patch_file = Path(tmp) / "change.diff"
        patch_file.write_bytes(patch)
        policy = PatchPolicy(
            max_files_changed=10**6,
            max_lines_changed=10**9,
            max_hunks=10**7,
            max_patch_bytes=10**10,
        )
        scope = FileScope(allowed_paths=["src/**"], forbidden_paths=["src/secret/**"])

        def uet() -> None:
            report = validate(parse_patch(patch), len(patch), scope, policy, History())
            assert report.ok, report.errors[:3]

        def git_check() -> None:
            git(repo, "apply", "--check", str(patch_file))

        ours = best_of(args.repeat, uet)
        theirs = best_of(args.repeat, git_check)
    mb = len(patch) / 1e6
    stats = parse_patch(patch).stats
    print(
        f"patch: {mb:.1f} MB, {stats.files_changed} files, {stats.hunks} hunks, "
        f"+{stats.insertions}/-{stats.deletions}"
    )
    print(f"uet parse+validate: {ours:.3f}s = {mb / ours:.1f} MB/s")
    print(f"git apply --check:  {theirs:.3f}s = {mb / theirs:.1f} MB/s")
    print(
        f"summary: validation throughput {mb / ours:.1f} MB/s; "
        f"{ours / theirs:.2f}x the time of git apply --check"
    )


if __name__ == "__main__":
    main()
