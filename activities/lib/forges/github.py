"""GitHub (github.com, or GitHub Enterprise Server's ``https://HOST/api/v3``) as a :class:`Forge`.

Written against GitHub's REST description ``github/rest-api-description``,
``descriptions/api.github.com/api.github.com.2022-11-28.yaml`` (info.version 1.1.4), the API
version this client asks for with ``X-GitHub-Api-Version: 2022-11-28``:

- ``pulls/list`` ``GET /repos/{owner}/{repo}/pulls?state=&head=user:ref&base=``
- ``pulls/create`` ``POST /repos/{owner}/{repo}/pulls`` (title, head, base, body, draft; 422
  "A pull request already exists for OWNER:branch." when one is open)
- ``pulls/update`` ``PATCH /repos/{owner}/{repo}/pulls/{pull_number}`` (title, body, base)
- ``pulls/request-reviewers`` ``POST …/pulls/{pull_number}/requested_reviewers``
- ``issues/add-labels`` ``POST …/issues/{issue_number}/labels`` (a pull request is an issue)
- ``issues/list-for-repo`` ``GET …/issues?state=&labels=a,b&milestone=N|*|none`` (pull
  requests come back too, marked by a ``pull_request`` key: dropped here)
- ``issues/get`` ``GET …/issues/{issue_number}``
- ``issues/list-comments``/``issues/create-comment`` ``…/issues/{issue_number}/comments``,
  ``issues/update-comment`` ``PATCH …/issues/comments/{comment_id}``
- ``issues/list-milestones`` ``GET …/milestones`` (to turn a milestone's title into its number)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx

from activities.lib.forges.base import Comment, ForgeError, ForgeKind, Issue, PullRequest
from activities.lib.forges.http import ApiClient, Sleep

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
_ALREADY_EXISTS = "a pull request already exists"


class GitHubForge:
    """``repository``: ``OWNER/REPO``; ``token``: a personal access token (fine-grained:
    Pull requests and Issues read/write) or an app installation token."""

    kind: ForgeKind = "github"

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        token_env: str = "GITHUB_TOKEN",
        per_page: int = 100,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        owner, _, name = repository.strip().strip("/").partition("/")
        if not owner or not name or "/" in name:
            raise ForgeError(f"GitHub: {repository!r} is not OWNER/REPO")
        self.repository = f"{owner}/{name}"
        self.owner = owner
        self._per_page = max(1, min(100, per_page))  # GitHub's maximum page size is 100
        self._repo_path = f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self._api = ApiClient(
            api_url,
            forge="GitHub",
            token=token,
            token_env=token_env,
            auth_header="Authorization",
            auth_scheme="Bearer",
            headers={"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION},
            sleep=sleep,
            clock=clock,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- pull requests ---------------------------------------------------------------------

    async def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        # GitHub filters by "user:ref"; a bare branch name would match nothing (it is ignored).
        qualified = head if ":" in head else f"{self.owner}:{head}"
        pulls = await self._api.paginate(
            f"{self._repo_path}/pulls",
            params={"head": qualified, "base": base, "state": "open", "per_page": self._per_page},
            what=f"find the pull request {head} → {base} in {self.repository}",
        )
        branch = head.partition(":")[2] if ":" in head else head
        for pull in pulls:
            if _ref(pull, "head") == branch and _ref(pull, "base") == base:
                return _pull_request(pull)
        return None

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
    ) -> PullRequest:
        """The open pull request ``head`` → ``base``, opened unless one already is (a retried
        activity, or one a person opened). Labels and reviewers are added either way: both
        are idempotent, and a crash between opening and labelling is thereby healed."""
        pull = await self.find_pull_request(head, base)
        if pull is None:
            what = f"open a pull request {head} → {base} in {self.repository}"
            try:
                data = await self._api.request_json(
                    "POST",
                    f"{self._repo_path}/pulls",
                    json={"title": title, "head": head, "base": base, "body": body, "draft": draft},
                    what=what,
                )
            except ForgeError as exc:
                # Opened meanwhile (a concurrent attempt, or the 5xx'd first try did open it).
                if exc.status != 422 or _ALREADY_EXISTS not in str(exc).lower():
                    raise
                pull = await self.find_pull_request(head, base)
                if pull is None:
                    raise
            else:
                pull = _pull_request(data)
        if labels:
            await self._api.request_json(
                "POST",
                f"{self._repo_path}/issues/{pull.number}/labels",
                json={"labels": list(labels)},
                what=f"label pull request #{pull.number} in {self.repository}",
                idempotent=True,  # adding a label twice leaves one
            )
        if reviewers:
            users = [r for r in reviewers if "/" not in r]
            # "org/team" names a team; GitHub wants its slug among team_reviewers.
            teams = [r.rpartition("/")[2] for r in reviewers if "/" in r]
            payload: dict[str, object] = {"reviewers": users}
            if teams:
                payload["team_reviewers"] = teams
            await self._api.request_json(
                "POST",
                f"{self._repo_path}/pulls/{pull.number}/requested_reviewers",
                json=payload,
                what=f"request reviewers for pull request #{pull.number} in {self.repository}",
                idempotent=True,  # requesting a requested reviewer again changes nothing
            )
        return pull

    async def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        base: str | None = None,
    ) -> PullRequest:
        changes = {
            k: v for k, v in {"title": title, "body": body, "base": base}.items() if v is not None
        }
        path = f"{self._repo_path}/pulls/{number}"
        what = f"update pull request #{number} in {self.repository}"
        if not changes:
            return _pull_request(await self._api.request_json("GET", path, what=what))
        return _pull_request(await self._api.request_json("PATCH", path, json=changes, what=what))

    # -- issues ----------------------------------------------------------------------------

    async def list_issues(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        label: str | None = None,
        milestone: str | None = None,
    ) -> list[Issue]:
        params: dict[str, str | int] = {"state": state, "per_page": self._per_page}
        if label:
            params["labels"] = label
        if milestone:
            params["milestone"] = await self._milestone_number(milestone)
        items = await self._api.paginate(
            f"{self._repo_path}/issues",
            params=params,
            what=f"list the issues of {self.repository}",
        )
        return [_issue(item) for item in items if "pull_request" not in item]

    async def get_issue(self, number: int) -> Issue | None:
        data = await self._api.request_json(
            "GET",
            f"{self._repo_path}/issues/{number}",
            what=f"get issue #{number} of {self.repository}",
            missing_ok=True,
        )
        # A pull request's number answers here too; it is no issue to plan from.
        if data is None or "pull_request" in data:
            return None
        return _issue(data)

    async def list_comments(self, number: int) -> list[Comment]:
        items = await self._api.paginate(
            f"{self._repo_path}/issues/{number}/comments",
            params={"per_page": self._per_page},
            what=f"list the comments of #{number} in {self.repository}",
        )
        return [_comment(item) for item in items]

    async def add_comment(self, number: int, body: str) -> Comment:
        # Not retried on a 5xx inside the client: the comment may have been posted; the
        # caller's find-by-marker-then-update is what keeps it to one.
        data = await self._api.request_json(
            "POST",
            f"{self._repo_path}/issues/{number}/comments",
            json={"body": body},
            what=f"comment on #{number} in {self.repository}",
        )
        return _comment(data)

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        data = await self._api.request_json(
            "PATCH",
            f"{self._repo_path}/issues/comments/{comment_id}",
            json={"body": body},
            what=f"update comment {comment_id} on #{number} in {self.repository}",
        )
        return _comment(data)

    async def _milestone_number(self, milestone: str) -> str:
        """GitHub filters by a milestone's number (or ``*``/``none``); a title is looked up."""
        if milestone.isdigit() or milestone in ("*", "none"):
            return milestone
        milestones = await self._api.paginate(
            f"{self._repo_path}/milestones",
            params={"state": "all", "per_page": self._per_page},
            what=f"list the milestones of {self.repository}",
        )
        for item in milestones:
            if isinstance(item, dict) and item.get("title") == milestone:
                return str(item["number"])
        raise ForgeError(
            f"GitHub: {self.repository} has no milestone titled {milestone!r}",
            status=404,
            details={"milestones": [m.get("title") for m in milestones if isinstance(m, dict)]},
        )


def _ref(pull: Mapping[str, Any], side: str) -> str:
    part = pull.get(side)
    return str(part.get("ref", "")) if isinstance(part, dict) else ""


def _pull_request(data: Mapping[str, Any]) -> PullRequest:
    state: Literal["open", "closed", "merged"] = "open"
    if data.get("state") == "closed":
        state = "merged" if data.get("merged_at") or data.get("merged") else "closed"
    return PullRequest(
        number=int(data["number"]),
        url=str(data.get("html_url") or data.get("url") or ""),
        head=_ref(data, "head"),
        base=_ref(data, "base"),
        state=state,
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),
        draft=bool(data.get("draft")),
    )


def _issue(data: Mapping[str, Any]) -> Issue:
    labels = tuple(
        str(label.get("name") if isinstance(label, dict) else label)
        for label in data.get("labels") or ()
    )
    milestone = data.get("milestone")
    return Issue(
        number=int(data["number"]),
        title=str(data.get("title") or ""),
        body=str(data.get("body") or ""),  # GitHub sends null for an empty body
        state="closed" if data.get("state") == "closed" else "open",
        labels=labels,
        milestone=str(milestone["title"]) if isinstance(milestone, dict) else None,
        url=str(data.get("html_url") or ""),
    )


def _comment(data: Mapping[str, Any]) -> Comment:
    return Comment(id=int(data["id"]), body=str(data.get("body") or ""))
