"""The user's repository as ``uet run`` checks it before anything starts: what it is, and what
of its state a run leaves out. It only reads: never an index refresh, never a lock."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.git import open_repository, redact_url, resolve_commit, run_git
from activities.lib.remote_repo import is_url
from runtime.errors import UserError


async def check_repo(repo: str, base_ref: str | None) -> str:
    """The user's repository: a work tree, a linked worktree or a bare repository (uet only
    needs its git dir), with at least one commit or a base_ref that names one; or a git URL
    that workers fetch from and push uet's refs to. What the run carries as ``repo_path``."""
    if is_url(repo):
        await check_remote(repo, base_ref)
        return repo
    path = Path(repo).expanduser().resolve()
    if not path.exists():
        raise UserError(f"--repo {repo}: no such directory; pass the path of a git repository")
    if not path.is_dir():
        raise UserError(f"--repo {repo}: is a file, not a directory; pass a git repository")
    try:
        git = await open_repository(path)
    except ApplicationError as exc:
        raise UserError(f"--repo {repo}: {exc.message}; pass a git repository") from None
    if await resolve_commit(git, "HEAD") is None and base_ref is None:
        raise UserError(f"--repo {repo}: the repository has no commits yet; commit something first")
    if base_ref is not None and await resolve_commit(git, base_ref) is None:
        raise UserError(
            f"base_ref {base_ref!r} does not name a commit in {path}; "
            "fix base_ref in the phase file or create the branch"
        )
    return str(path)


async def check_remote(url: str, base_ref: str | None) -> None:
    """A URL the CLI can read, with a commit to start from (workers are given the same URL:
    they need the same access — their own keys or credential helper)."""
    with tempfile.TemporaryDirectory() as cwd:
        listed = await run_git("ls-remote", "--symref", "--", url, cwd=Path(cwd), check=False)
    if listed.returncode != 0:
        said = listed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise UserError(
            f"--repo {redact_url(url)}: cannot read it ({said[-1] if said else 'git failed'}); "
            "check the URL and your access to it"
        )
    refs = {}
    for line in listed.text.splitlines():
        sha, _, name = line.partition("\t")
        if not sha.startswith("ref: "):
            refs[name] = sha
    if "HEAD" not in refs and base_ref is None:
        raise UserError(
            f"--repo {redact_url(url)}: the repository has no commits (or no HEAD); push a "
            "branch first or set base_ref in the phase file"
        )
    if base_ref is not None and not _names_ref(refs, base_ref):
        raise UserError(
            f"base_ref {base_ref!r} is not a branch or tag of {redact_url(url)}; fix base_ref "
            "in the phase file or push the branch"
        )


def _names_ref(refs: dict[str, str], rev: str) -> bool:
    """Whether ``rev`` names one of the remote's refs (or is a full commit id: the remote
    cannot be asked about those, the worker's fetch will say)."""
    if len(rev) == 40 and all(c in "0123456789abcdef" for c in rev):
        return True
    return any(
        name in refs for name in (rev, f"refs/heads/{rev}", f"refs/tags/{rev}", f"refs/{rev}")
    )


@dataclass(frozen=True)
class WorkTreeState:
    staged: int = 0
    modified: int = 0
    untracked: int = 0

    @property
    def dirty(self) -> bool:
        return bool(self.staged or self.modified or self.untracked)

    def describe(self) -> str:
        parts = [
            f"{n} {what}"
            for n, what in (
                (self.staged, "staged"),
                (self.modified, "modified"),
                (self.untracked, "untracked"),
            )
            if n
        ]
        return ", ".join(parts)


async def work_tree_state(path: Path) -> WorkTreeState:
    """Uncommitted changes in the work tree at ``path`` (none for a bare repository). Read with
    ``GIT_OPTIONAL_LOCKS=0`` (set for every uet git call): ``git status`` would otherwise
    refresh the user's index."""
    bare = await run_git("rev-parse", "--is-bare-repository", cwd=path, check=False)
    if bare.returncode != 0 or bare.text == "true":
        return WorkTreeState()
    result = await run_git("status", "--porcelain=v1", "-z", cwd=path, check=False)
    if result.returncode != 0:
        return WorkTreeState()
    staged = modified = untracked = 0
    entries = result.stdout.split(b"\0")
    skip = False
    for entry in entries:
        if skip or len(entry) < 3:
            skip = False
            continue
        x, y = chr(entry[0]), chr(entry[1])
        if x == "?":
            untracked += 1
            continue
        staged += x not in " !"
        modified += y not in " !"
        skip = x in "RC"  # a rename or copy is followed by its source path
    return WorkTreeState(staged, modified, untracked)
