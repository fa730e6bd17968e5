"""Forges: GitHub, GitLab and Gitea/Forgejo clients behind one protocol (base.py), pushing
uet's branches to their git remotes (push.py), and publishing a run as pull requests
(publish.py, with report.py's Markdown)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from activities.lib.forges.base import Forge, ForgeError
from schemas.forge import DEFAULT_API, ForgeSpec


def open_forge(spec: ForgeSpec, repository: str, token: str) -> Forge:
    """The client of ``spec.kind`` for ``repository`` (the token from ``spec.token_env``)."""
    api = spec.api_url or DEFAULT_API.get(spec.kind)
    if api is None:
        raise ForgeError(
            f"forge {spec.kind} has no public default API: set forge.api_url "
            "(e.g. https://codeberg.org/api/v1)"
        )
    if spec.kind == "github":
        from activities.lib.forges.github import GitHubForge

        return GitHubForge(repository, token, api, token_env=spec.token_variable())
    if spec.kind == "gitlab":
        from activities.lib.forges.gitlab import GitLabForge

        return GitLabForge(repository, token, api)
    from activities.lib.forges.gitea import GiteaForge

    return GiteaForge(repository, token, api)


def repository_of(url: str) -> str | None:
    """``OWNER/REPO`` (GitLab: ``group/…/project``) from a git remote's URL, or None."""
    scp = re.match(r"^[\w.+-]+@[\w.-]+:(?!//)(.+)$", url)
    path = scp.group(1) if scp else urlsplit(url).path
    path = path.strip("/").removesuffix(".git")
    return path if path.count("/") >= 1 and "" not in path.split("/") else None


__all__ = ["Forge", "ForgeError", "open_forge", "repository_of"]
