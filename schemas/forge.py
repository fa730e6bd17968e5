"""Forges (GitHub, GitLab, Gitea/Forgejo): where a run's result becomes a pull request.

``forge:`` in a phase file (or given to ``uet pr``) says which forge, which repository on it,
where its git remote is and which environment variable holds the token — never the token.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from schemas.base import Model

ForgeKind = Literal["github", "gitlab", "gitea"]
#: Where each kind's API is when ``api_url`` does not say (Gitea has no public default).
DEFAULT_API = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
DEFAULT_TOKEN_ENV = {"github": "GITHUB_TOKEN", "gitlab": "GITLAB_TOKEN", "gitea": "GITEA_TOKEN"}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REPOSITORY = re.compile(r"[\w.-]+(/[\w.-]+)+")


class PullRequestOptions(Model):
    title: str | None = Field(
        default=None, description="the pull request's title (default: the phase's id and title)"
    )
    draft: bool = Field(default=False, description="open it as a draft")
    labels: list[str] = Field(default_factory=list, description="labels to put on it")
    reviewers: list[str] = Field(default_factory=list, description="usernames asked to review")
    per_workstream: bool = Field(
        default=False,
        description="one pull request per workstream, stacked in dependency order",
    )


class ForgeSpec(Model):
    kind: ForgeKind = Field(description="github, gitlab or gitea (Forgejo speaks Gitea's API)")
    remote: str = Field(
        default="origin",
        description="the git remote to push to: a remote name of your repository, or a URL",
    )
    repository: str | None = Field(
        default=None,
        description="OWNER/REPO on the forge (GitLab: group/subgroup/project); default: what "
        "the remote's URL names",
    )
    api_url: str | None = Field(
        default=None, description="the forge's API root (default per kind; self-hosted: set it)"
    )
    token_env: str | None = Field(
        default=None,
        description="the NAME of the environment variable holding the token (default "
        "GITHUB_TOKEN, GITLAB_TOKEN or GITEA_TOKEN)",
    )
    base: str | None = Field(
        default=None,
        description="the branch the pull request targets (default: the phase's base_ref, else "
        "the remote's default branch)",
    )
    pr: PullRequestOptions = Field(default_factory=PullRequestOptions)
    publish: bool = Field(
        default=True,
        description="push and open the pull request when the run completes (false: only on "
        "`uet pr RUN`); the token must then be in the workers' environment",
    )
    comment_issues: bool = Field(
        default=True,
        description="after the run, one comment on each workstream's issue (workstream "
        "`issue:`) with its outcome and the pull request; a re-run updates it",
    )

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise PydanticCustomError(
                "env_name",
                "{value} is not an environment variable name (give the NAME of the variable "
                "that holds the token, never the token)",
                {"value": repr(value)},
            )
        return value

    @field_validator("repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not _REPOSITORY.fullmatch(value):
            raise PydanticCustomError(
                "repository", "{value} is not OWNER/REPO", {"value": repr(value)}
            )
        return value

    def token_variable(self) -> str:
        return self.token_env or DEFAULT_TOKEN_ENV[self.kind]


class PullRequestRef(Model):
    """A pull request uet opened or updated for a run (GitLab: a merge request)."""

    number: int = Field(description="its number (GitLab: the merge request's iid)")
    url: str = Field(description="its page")
    head: str = Field(description="the uet branch it merges")
    base: str = Field(description="the branch it targets")
    workstream_id: str | None = Field(
        default=None, description="per_workstream: the workstream it carries"
    )
    created: bool = Field(default=False, description="opened now (else: updated)")


class IssueCommentRef(Model):
    """The comment uet left (or updated) on a workstream's issue after a run."""

    issue: int
    workstream_id: str
    comment_id: int
    created: bool = Field(default=False, description="written now (else: updated)")
