"""GitLab (gitlab.com or self-managed): merge requests, issues and their notes over REST v4.

Followed: GitLab's REST API documentation (``doc/api/merge_requests.md``, ``issues.md``,
``notes.md``, ``users.md``, ``rest/index.md``) as published for GitLab 17.x, and the
``lib/api/merge_requests.rb`` error handling behind it. What this client relies on:

- the project is addressed by its URL-encoded path (``group%2Fsub%2Fproject``), so a client
  needs no numeric id;
- a merge request's number is its ``iid`` (per project), its states ``opened``, ``closed``,
  ``merged`` and ``locked`` (a merge in progress: still open);
- a draft is a title prefix (``Draft:``; GitLab also reads ``[Draft]``, ``(Draft)`` and the
  old ``WIP:``), so the prefix is added here and taken off the title this client returns;
- ``reviewer_ids`` are user ids: ``GET /users?username=`` turns a name into one;
- labels are a comma-separated string, created in the project when they do not exist yet;
- notes list newest first unless ``sort=asc``, and system notes ("changed the description")
  are in the same list, marked ``system: true``: they are not comments;
- a second open merge request for the same source and target branches is refused with 409
  ``{"message": ["Another open merge request already exists for this source branch: !N"]}``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import quote

import httpx

from activities.lib.forges.base import Comment, ForgeError, ForgeKind, Issue, PullRequest
from activities.lib.forges.http import ApiClient, Sleep

DEFAULT_API_URL = "https://gitlab.com/api/v4"
DRAFT_PREFIX = "Draft: "
#: What GitLab itself reads as a draft (``MergeRequest::DRAFT_REGEX``, case-insensitive).
_DRAFT_RE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft|\[wip\]|wip:)\s*", re.IGNORECASE)
#: GitLab's largest page: fewer requests for a long list.
_PER_PAGE = 100

_MR_STATES: Mapping[str, Literal["open", "closed", "merged"]] = {
    "opened": "open",
    "locked": "open",  # GitLab's brief state while a merge runs: not closed yet
    "closed": "closed",
    "merged": "merged",
}
_ISSUE_STATE_QUERY = {"open": "opened", "closed": "closed", "all": "all"}


def split_draft(title: str) -> tuple[str, bool]:
    """The title without GitLab's draft prefix, and whether it had one."""
    match = _DRAFT_RE.match(title)
    if match is None:
        return title, False
    return title[match.end() :], True


class GitLabForge:
    """One GitLab project (``repository``: ``group/subgroup/project``)."""

    kind: ForgeKind = "gitlab"

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str = DEFAULT_API_URL,
        *,
        sleep: Sleep = asyncio.sleep,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if repository.count("/") < 1 or "" in repository.split("/"):
            raise ForgeError(
                f"GitLab: {repository!r} is no project path; expected group/project "
                "(or group/subgroup/project)"
            )
        self.repository = repository
        # The whole path is one path segment for GitLab: every "/" encoded.
        self._project = f"projects/{quote(repository, safe='')}"
        self._api = ApiClient(
            api_url,
            forge="GitLab",
            token=token,
            token_env="GITLAB_TOKEN",
            auth_header="PRIVATE-TOKEN",
            auth_scheme=None,
            sleep=sleep,
            attempts=attempts,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- merge requests ----------------------------------------------------------------------

    async def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        found = await self._api.paginate(
            f"{self._project}/merge_requests",
            params={
                "source_branch": head,
                "target_branch": base,
                "state": "opened",
                "per_page": _PER_PAGE,
            },
            what=f"find the merge request {head} → {base} in {self.repository}",
        )
        # The filter is GitLab's; checked again so a server ignoring it cannot mislead.
        for item in found:
            if item.get("source_branch") == head and item.get("target_branch") == base:
                return self._pull_request(item)
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
        # Find first: a retried activity must not open a second merge request.
        existing = await self.find_pull_request(head, base)
        if existing is not None:
            return existing
        payload: dict[str, object] = {
            "source_branch": head,
            "target_branch": base,
            "title": _with_draft(title, draft),
            "description": body,
        }
        if labels:
            payload["labels"] = ",".join(labels)
        if reviewers:
            payload["reviewer_ids"] = [await self._user_id(name) for name in reviewers]
        try:
            created = await self._api.request_json(
                "POST",
                f"{self._project}/merge_requests",
                json=payload,
                what=f"open a merge request {head} → {base} in {self.repository}",
            )
        except ForgeError as exc:
            if exc.status != 409:
                raise
            # Opened meanwhile (a concurrent or half-finished earlier try): that one is it.
            existing = await self.find_pull_request(head, base)
            if existing is None:
                raise
            return existing
        return self._pull_request(created)

    async def update_pull_request(
        self,
        number: int,
        *,
        title: str | None = None,
        body: str | None = None,
        base: str | None = None,
    ) -> PullRequest:
        path = f"{self._project}/merge_requests/{number}"
        what = f"update merge request !{number} in {self.repository}"
        if title is None and body is None and base is None:
            # GitLab refuses a PUT that changes nothing (400 "at least one parameter").
            current = await self._api.request_json("GET", path, what=what)
            return self._pull_request(current)
        payload: dict[str, object] = {}
        if title is not None:
            # A new title keeps the merge request's draft state, which lives in the title.
            current = await self._api.request_json("GET", path, what=what)
            _, was_draft = split_draft(str(current.get("title") or ""))
            payload["title"] = _with_draft(title, was_draft)
        if body is not None:
            payload["description"] = body
        if base is not None:
            payload["target_branch"] = base
        updated = await self._api.request_json("PUT", path, json=payload, what=what)
        return self._pull_request(updated)

    async def _user_id(self, username: str) -> int:
        users = await self._api.request_json(
            "GET",
            "users",
            params={"username": username},
            what=f"look up the GitLab user {username!r}",
        )
        for user in users if isinstance(users, list) else []:
            if str(user.get("username", "")).lower() == username.lower():
                return int(user["id"])
        raise ForgeError(
            f"GitLab: no user named {username!r} to ask for a review; check the reviewers",
            status=404,
        )

    # -- issues and notes --------------------------------------------------------------------

    async def list_issues(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        label: str | None = None,
        milestone: str | None = None,
    ) -> list[Issue]:
        params: dict[str, str | int] = {
            "state": _ISSUE_STATE_QUERY[state],
            "per_page": _PER_PAGE,
            "order_by": "created_at",
            "sort": "asc",
        }
        if label is not None:
            params["labels"] = label
        if milestone is not None:
            params["milestone"] = milestone
        items = await self._api.paginate(
            f"{self._project}/issues", params=params, what=f"list the issues of {self.repository}"
        )
        return [_issue(item) for item in items]

    async def get_issue(self, number: int) -> Issue | None:
        item = await self._api.request_json(
            "GET",
            f"{self._project}/issues/{number}",
            what=f"read issue #{number} of {self.repository}",
            missing_ok=True,
        )
        return None if item is None else _issue(item)

    async def list_comments(self, number: int) -> list[Comment]:
        notes = await self._api.paginate(
            f"{self._project}/issues/{number}/notes",
            # Oldest first (GitLab's default is newest first), so "the first uet comment" is
            # the one uet posted first.
            params={"sort": "asc", "order_by": "created_at", "per_page": _PER_PAGE},
            what=f"list the comments on issue #{number} of {self.repository}",
        )
        return [_comment(note) for note in notes if not note.get("system")]

    async def add_comment(self, number: int, body: str) -> Comment:
        note = await self._api.request_json(
            "POST",
            f"{self._project}/issues/{number}/notes",
            json={"body": body},
            what=f"comment on issue #{number} of {self.repository}",
        )
        return _comment(note)

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        note = await self._api.request_json(
            "PUT",
            f"{self._project}/issues/{number}/notes/{comment_id}",
            json={"body": body},
            what=f"update comment {comment_id} on issue #{number} of {self.repository}",
        )
        return _comment(note)

    # -- conversions -------------------------------------------------------------------------

    def _pull_request(self, item: Any) -> PullRequest:
        if not isinstance(item, dict):
            raise ForgeError(f"GitLab: a merge request of {self.repository} is not an object")
        title, draft = split_draft(str(item.get("title") or ""))
        return PullRequest(
            number=int(item["iid"]),
            url=str(item.get("web_url") or ""),
            head=str(item.get("source_branch") or ""),
            base=str(item.get("target_branch") or ""),
            state=_MR_STATES.get(str(item.get("state")), "closed"),
            title=title,
            body=str(item.get("description") or ""),
            # Newer GitLab says so itself; older ones only through the title.
            draft=bool(item.get("draft", item.get("work_in_progress", draft))) or draft,
        )


def _with_draft(title: str, draft: bool) -> str:
    bare, _ = split_draft(title)
    return f"{DRAFT_PREFIX}{bare}" if draft else bare


def _issue(item: Any) -> Issue:
    milestone = item.get("milestone")
    return Issue(
        number=int(item["iid"]),
        title=str(item.get("title") or ""),
        body=str(item.get("description") or ""),  # null when never written
        state="open" if item.get("state") == "opened" else "closed",
        labels=tuple(str(label) for label in item.get("labels") or ()),
        milestone=str(milestone["title"]) if isinstance(milestone, dict) else None,
        url=str(item.get("web_url") or ""),
    )


def _comment(note: Any) -> Comment:
    return Comment(id=int(note["id"]), body=str(note.get("body") or ""))
