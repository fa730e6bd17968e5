"""The sandbox one step's process runs in (activities/lib/sandbox.py builds it): which mode,
whether it reaches the network, what it sees besides its checkout.

``mode: auto`` (the default) is the worker's ``UET_SANDBOX`` when set (``bwrap`` or ``none``:
an operator's choice, e.g. workers that already run in a container), else ``bwrap`` where
bubblewrap can run and ``none`` where it cannot — the worker says so in one line when it
starts (``startup_note``). ``mode: bwrap`` asked for explicitly never runs unsandboxed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from temporalio.exceptions import ApplicationError

from activities.lib.git import Git, objects_dir
from activities.lib.remote_repo import local_path
from activities.lib.sandbox import SandboxPlan, Seed, plan_sandbox, probe
from activities.lib.state_dir import StateDir
from schemas.sandbox import SandboxSpec

#: What runs: an AI tool and setup reach the network by default (APIs, package indexes);
#: shell and patch tools, gates, fixers and compensation do not.
StepKind = Literal["ai", "shell", "setup", "gate", "fixer", "compensation"]
NETWORK_BY_DEFAULT: frozenset[str] = frozenset({"ai", "setup"})


def resolved_mode(spec: SandboxSpec) -> Literal["bwrap", "none"]:
    if spec.mode != "auto":
        return spec.mode
    chosen = os.environ.get("UET_SANDBOX", "").strip().lower()
    if chosen in ("bwrap", "none"):
        return chosen  # type: ignore[return-value]
    if chosen:
        raise ApplicationError(
            f"UET_SANDBOX={chosen!r} on this worker: say bwrap, none or nothing",
            type="SandboxInvalid",
            non_retryable=True,
        )
    return "bwrap" if probe() is None else "none"


def startup_note() -> str | None:
    """One line for a starting worker when phases that do not say get no sandbox here."""
    chosen = os.environ.get("UET_SANDBOX", "").strip().lower()
    if chosen in ("none", "bwrap"):
        return None  # the operator's own choice: nothing to tell them
    problem = probe()
    if chosen in ("", "auto") and problem is not None:
        return (
            f"no sandbox for tools and gates on this worker: {problem}; phases that ask for "
            "sandbox mode bwrap will fail here"
        )
    return None


def step_sandbox(
    spec: SandboxSpec,
    kind: StepKind,
    *,
    tree: Path,
    repo: Git,
    repo_path: str,
    state: StateDir,
    scratch: Path,
    env: Mapping[str, str],
    config_paths: Sequence[str] = (),
) -> SandboxPlan | None:
    """The plan for one process of a step in ``tree``; None when it runs as it always did
    (no sandbox, no limits). The step's own ``scratch`` stays reachable (a prompt or message
    file named on its command line); ``config_paths`` (an AI tool's login and settings, under
    the home) are copied into its private home."""
    mode = resolved_mode(spec)
    if mode == "none" and not spec.limits.any():
        return None
    home = Path.home()
    seeds = [Seed(home / p) for p in config_paths if (home / p).exists()]
    user_tree = local_path(repo_path)  # None for a URL: only the worker's mirror is here
    git_dir = repo.git_dir.resolve()
    if git_dir == user_tree:  # a bare repository: nothing but its objects is shown
        user_tree = None
    hidden = [] if user_tree is not None and git_dir.is_relative_to(user_tree) else [git_dir]
    private = scratch / "sandbox"
    private.mkdir(parents=True, exist_ok=True)
    return plan_sandbox(
        spec.model_copy(update={"mode": mode}),
        checkout=tree,
        object_store=objects_dir(repo),
        scratch=private,
        uet_home=state.home,
        user_tree=user_tree,
        network_default=kind in NETWORK_BY_DEFAULT,
        seeds=seeds,
        hidden=hidden,
        exposed=[scratch],
        env=env,
    )
