"""What the OS sandbox costs per process.

    python bench/sandbox.py [--runs 50]

Runs ``true`` and ``git status`` in a checkout (a standalone repository borrowing a user
repository's objects, as uet makes them) through ``run_process``, ``--runs`` times each, with
``mode: none``, ``mode: bwrap``, and ``mode: bwrap`` with memory and pids limits (a cgroup per
process where the worker can make one). Each run builds its plan, as a tool run would. Prints
milliseconds per run and the ratio to ``mode: none``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from activities.lib.git import checkout, open_repository  # noqa: E402
from activities.lib.process import run_process  # noqa: E402
from activities.lib.sandbox import cgroup_places, plan_sandbox, probe  # noqa: E402
from schemas.sandbox import SandboxSpec  # noqa: E402

MODES: dict[str, dict[str, Any]] = {
    "none": {"mode": "none"},
    "bwrap": {"mode": "bwrap"},
    "bwrap+limits": {"mode": "bwrap", "limits": {"memory_mb": 512, "pids": 256}},
}
COMMANDS: dict[str, str | list[str]] = {"true": ["true"], "git status": "git status --short"}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=b", "-c", "user.email=b@b", *args],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


async def world(base: Path) -> tuple[Path, Path, Path]:
    user = base / "project"
    (user / "src").mkdir(parents=True)
    git(user, "init", "-q", "-b", "main")
    for i in range(200):
        (user / "src" / f"m{i:03d}.py").write_text(f"VALUE = {i}\n")
    git(user, "add", "-A")
    git(user, "commit", "-q", "-m", "base")
    home = base / "uet-home"
    tree = home / "worktrees" / "bench" / "tree"
    tree.mkdir(parents=True)
    await checkout(await open_repository(user), git(user, "rev-parse", "HEAD"), tree)
    return user, home, tree


async def measure(
    runs: int, spec: dict[str, Any], command: str | list[str], paths: tuple[Path, Path, Path]
) -> float:
    user, home, tree = paths
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", "HOME": str(Path.home())}
    started = time.perf_counter()
    for i in range(runs):
        plan = plan_sandbox(
            SandboxSpec.model_validate(spec),
            checkout=tree,
            object_store=user / ".git" / "objects",
            scratch=home / "worktrees" / "bench" / f"sandbox-{i}",
            uet_home=home,
            user_tree=user,
            network_default=False,
            env=env,
        )
        result = await run_process(
            command,
            cwd=tree,
            env=env,
            timeout_s=60,
            log_path=home / "log",
            sandbox=plan,
        )
        assert result.exit_code == 0, result.tail
    return (time.perf_counter() - started) / runs * 1000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    problem = probe()
    if problem is not None:
        sys.exit(problem)
    print(f"cgroup controllers: {sorted(cgroup_places()) or 'none (rlimit fallback)'}")
    # Not under /tmp: the sandbox replaces /tmp, and the layout would not be the real one.
    base = Path(tempfile.mkdtemp(prefix="uet-bench-sandbox-", dir="/var/tmp"))
    try:
        paths = await world(base)
        for label, command in COMMANDS.items():
            await measure(3, MODES["bwrap"], command, paths)  # warm caches
            times = {
                mode: await measure(args.runs, spec, command, paths) for mode, spec in MODES.items()
            }
            none = times["none"]
            cells = "  ".join(
                f"{mode} {ms:6.1f} ms (x{ms / none:.2f})" for mode, ms in times.items()
            )
            print(f"{label:<11} {args.runs} runs: {cells}")
            print(f"{'':<11} sandbox cost per run: {times['bwrap'] - none:+.1f} ms")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
