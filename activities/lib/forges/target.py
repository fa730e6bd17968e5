"""Where a run is published: the repository that holds its commits, the git remote to push
to, ``OWNER/REPO`` on the forge, the token, and the branch the pull request targets.

Each thing that cannot be found is the user's to fix, and says so in one line
(:class:`PublishRefused`); the caller turns it into a CLI error or a non-retryable failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from activities.lib.forges import repository_of
from activities.lib.forges.push import push_env
from activities.lib.git import Git, open_repository, redact_url, run_git
from activities.lib.remote_repo import is_url, open_mirror
from schemas.forge import ForgeSpec


class PublishRefused(Exception):
    """A publish that cannot succeed until someone changes a setting (one line)."""


@dataclass(frozen=True)
class Target:
    repo: Git  # holds the run's commits
    url: str  # the remote pushed to (may carry no credentials)
    repository: str  # OWNER/REPO on the forge
    token: str
    base: str | None  # the branch the pull request targets (None: no pull request asked)


async def resolve(
    spec: ForgeSpec,
    repo_path: str,
    head: str,
    home: Path,
    *,
    base_ref: str | None,
    environ: Mapping[str, str],
    where: str = "",
    with_base: bool = True,
) -> Target:
    """``where``: said after a missing token (" on worker pid@host"), since the token is read
    from the environment of whoever publishes; ``with_base``: find the branch a pull request
    would target (asking the remote when nothing says)."""
    token = environ.get(spec.token_variable())
    if not token:
        raise PublishRefused(
            f"${spec.token_variable()} is not set{where}: export the forge token there (or name "
            "another variable with --token-env / forge.token_env)"
        )
    if is_url(repo_path):
        repo, user_repo = await open_mirror(home, repo_path, [head]), None
    else:
        repo, user_repo = await open_repository(Path(repo_path)), Path(repo_path)
    url = await _remote_url(spec.remote, user_repo, repo_path)
    repository = spec.repository or repository_of(url)
    if repository is None:
        raise PublishRefused(
            f"cannot tell OWNER/REPO from {redact_url(url)}; pass --repository or set "
            "forge.repository"
        )
    base = spec.base or base_ref
    if with_base and base is None:
        base = await _default_branch(repo, url, token, spec.kind)
    return Target(repo=repo, url=url, repository=repository, token=token, base=base)


async def _remote_url(remote: str, user_repo: Path | None, repo_path: str) -> str:
    if is_url(remote):
        return remote
    if user_repo is None:  # a run on a URL: its remote is that URL
        return repo_path
    got = await run_git("config", "--get", f"remote.{remote}.url", cwd=user_repo, check=False)
    if got.returncode != 0 or not got.text:
        raise PublishRefused(
            f"{user_repo} has no git remote {remote!r}; pass --remote NAME|URL or set forge.remote"
        )
    return got.text


async def _default_branch(repo: Git, url: str, token: str, kind: str) -> str:
    """The remote's HEAD branch, asked with the same one-process credentials as the push."""
    listed = await run_git(
        "ls-remote", "--symref", "--", url, "HEAD",
        cwd=repo.git_dir, env=push_env(repo, url, token, kind), check=False,
    )  # fmt: skip
    for line in listed.text.splitlines():
        if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
            return line[len("ref: refs/heads/") : -len("\tHEAD")]
    raise PublishRefused(
        f"cannot tell the default branch of {redact_url(url)}; pass --base BRANCH or set forge.base"
    )
