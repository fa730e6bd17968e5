#!/usr/bin/env python3
"""(Re)create the demo's sample repository: ``python3 make_repo.py DIR``.

DIR becomes a fresh git repository on branch ``main`` holding a copy of ``template/`` in one
commit. Author, committer and date are fixed and the user's git config is ignored, so the
commit sha is the same on every machine. A DIR left by an earlier run (it has the marker file
``.uet-demo``) is replaced; any other existing DIR is refused. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "template"
MARKER = ".uet-demo"
IDENTITY = {"name": "uet demo", "email": "demo@uet.invalid", "date": "1704067200 +0000"}


def git(repo: Path, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_AUTHOR_NAME=IDENTITY["name"],
        GIT_AUTHOR_EMAIL=IDENTITY["email"],
        GIT_AUTHOR_DATE=IDENTITY["date"],
        GIT_COMMITTER_NAME=IDENTITY["name"],
        GIT_COMMITTER_EMAIL=IDENTITY["email"],
        GIT_COMMITTER_DATE=IDENTITY["date"],
    )
    config = [
        f"user.name={IDENTITY['name']}",
        f"user.email={IDENTITY['email']}",
        "commit.gpgSign=false",
        "core.autocrlf=false",
        "core.fileMode=true",
        "init.templateDir=",
    ]
    command = ["git", *(a for c in config for a in ("-c", c)), *args]
    subprocess.run(command, cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: make_repo.py DIR", file=sys.stderr)
        return 2
    repo = Path(argv[0]).expanduser().resolve()
    if repo.exists() or repo.is_symlink():
        if not (repo.is_dir() and (repo / MARKER).is_file()):
            print(
                f"make_repo.py: {repo} exists and is not a demo repository (no {MARKER} file); "
                "refusing to replace it",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(repo)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    shutil.copytree(TEMPLATE, repo, ignore=ignore)
    (repo / MARKER).write_text("made by uet's examples/demo/make_repo.py; it may replace this\n")
    for path in repo.rglob("*"):
        if path.is_file():
            path.chmod(0o644)  # git records the executable bit: keep the sha independent of it
    git(repo, "init", "--quiet", "-b", "main")
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "--no-verify", "-m", "inventory: initial sample project")
    print(repo)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
