"""What uet asks of a forge (GitHub, GitLab, Gitea/Forgejo): pull requests and issues.

One small protocol, one module per kind. Every call is idempotent where the forge allows it
(find before create), so a retried activity never opens a second pull request or posts a
second comment. A client never logs or returns its token; errors are :class:`ForgeError`,
one line each, with ``retry_after_s`` set when a retry can help (rate limits, 5xx).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from schemas.forge import ForgeKind


@dataclass(frozen=True)
class PullRequest:
    number: int  # GitHub/Gitea: the PR number; GitLab: the merge request's iid
    url: str  # the page a person opens
    head: str  # the branch it merges from
    base: str  # the branch it merges into
    state: Literal["open", "closed", "merged"]
    title: str
    body: str
    draft: bool = False


@dataclass(frozen=True)
class Issue:
    number: int  # GitHub/Gitea: number; GitLab: iid
    title: str
    body: str
    state: Literal["open", "closed"]
    labels: tuple[str, ...] = ()
    milestone: str | None = None
    url: str = ""


@dataclass(frozen=True)
class Comment:
    id: int
    body: str


@dataclass
class ForgeError(Exception):
    """One line a person can act on: what failed, where, how to fix."""

    message: str
    status: int | None = None  # the HTTP status, when there was one
    retry_after_s: float | None = None  # a rate limit or 5xx: when to try again
    details: dict[str, object] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        return self.retry_after_s is not None


class Forge(Protocol):
    """A repository on a forge, as uet uses it (``repository``: ``OWNER/REPO``; GitLab:
    ``group/subgroup/project``)."""

    kind: ForgeKind
    repository: str

    async def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        """The open pull request from ``head`` into ``base``, if there is one."""
        ...

    async def open_pull_request(
        self,
        head: str,
        base: str,
        title: str,
        body: str,
        *,
        draft: bool = False,
        labels: list[str] | None = None,
        reviewers: list[str] | None = None,
    ) -> PullRequest: ...

    async def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        base: str | None = None,
    ) -> PullRequest: ...

    async def list_issues(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        label: str | None = None,
        milestone: str | None = None,
    ) -> list[Issue]:
        """Every matching issue (all pages; GitHub's pull requests left out)."""
        ...

    async def get_issue(self, number: int) -> Issue | None: ...

    async def list_comments(self, number: int) -> list[Comment]: ...

    async def add_comment(self, number: int, body: str) -> Comment: ...

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        """(GitLab needs the issue's iid to address a note; the others ignore ``number``.)"""
        ...

    async def aclose(self) -> None: ...
