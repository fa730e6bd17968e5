"""Gitea and Forgejo (Codeberg, self-hosted): pull requests, issues and comments over API v1.

Followed: Gitea's swagger (``templates/swagger/v1_json.tmpl``, generated from the
``swagger:operation`` comments in ``routers/api/v1/repo/{pull,issue,issue_comment,label}.go``)
of Gitea 1.22 to 1.24; Forgejo serves the same API. What this client relies on:

- ``Authorization: token …``; errors are ``{"message": …, "url": <swagger>}``;
- ``GET /repos/{owner}/{repo}/pulls/{base}/{head}`` (Gitea ≥ 1.22) finds a pull request by
  its branches, but of any state, and older servers answer it 404: so an open one is looked
  for in the list of open pull requests whenever that route does not give one;
- a draft is a title prefix (``WIP:``; Gitea's ``[repository.pull-request]
  WORK_IN_PROGRESS_PREFIXES`` default to ``WIP:`` and ``[WIP]``);
- labels travel as label ids (``GET /repos/{owner}/{repo}/labels`` maps names to ids);
  reviewers are asked for after opening (``POST …/pulls/{index}/requested_reviewers``), which
  every version since 1.14 has;
- a second open pull request for the same head and base is refused with 409 "pull request
  already exists for these targets [...]";
- list endpoints page with ``page``/``limit`` (at most ``MAX_RESPONSE_ITEMS``, 50 by
  default), ``Link`` and ``X-Total-Count``; ``GET /issues`` needs ``type=issues`` to leave
  pull requests out, and an issue's comments come in one unpaged list.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal
from urllib.parse import quote

import httpx

from activities.lib.forges.base import Comment, ForgeError, ForgeKind, Issue, PullRequest
from activities.lib.forges.http import ApiClient, Sleep

DRAFT_PREFIX = "WIP: "
#: Gitea's default work-in-progress prefixes (matched case-insensitively, as Gitea does).
_DRAFT_RE = re.compile(r"^\s*(wip:|\[wip\])\s*", re.IGNORECASE)
#: Gitea's default MAX_RESPONSE_ITEMS: a larger limit is cut to it anyway.
_LIMIT = 50


def split_draft(title: str) -> tuple[str, bool]:
    """The title without Gitea's work-in-progress prefix, and whether it had one."""
    match = _DRAFT_RE.match(title)
    if match is None:
        return title, False
    return title[match.end() :], True


class GiteaForge:
    """One Gitea/Forgejo repository (``repository``: ``OWNER/REPO``; ``api_url``: the API's
    root, such as ``https://codeberg.org/api/v1`` — there is no default forge)."""

    kind: ForgeKind = "gitea"

    def __init__(
        self,
        repository: str,
        token: str,
        api_url: str,
        *,
        sleep: Sleep = asyncio.sleep,
        attempts: int = 3,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        owner, _, name = repository.partition("/")
        if not owner or not name or "/" in name:
            raise ForgeError(f"Gitea: {repository!r} is no repository; expected OWNER/REPO")
        if not api_url:
            raise ForgeError(
                "Gitea: no API address; give the forge's, such as https://codeberg.org/api/v1"
            )
        self.repository = repository
        self._repo = f"repos/{quote(owner, safe='')}/{quote(name, safe='')}"
        self._api = ApiClient(
            api_url,
            forge="Gitea",
            token=token,
            token_env="GITEA_TOKEN",
            auth_header="Authorization",
            auth_scheme="token",
            sleep=sleep,
            attempts=attempts,
            transport=transport,
        )

    async def aclose(self) -> None:
        await self._api.aclose()

    # -- pull requests -----------------------------------------------------------------------

    async def find_pull_request(self, head: str, base: str) -> PullRequest | None:
        what = f"find the pull request {head} → {base} in {self.repository}"
        if "/" not in base:  # the route cannot carry a base with a "/" in it
            item = await self._api.request_json(
                "GET",
                f"{self._repo}/pulls/{quote(base, safe='')}/{quote(head, safe='/')}",
                what=what,
                missing_ok=True,  # none, or a server older than the route
            )
            if isinstance(item, dict) and _is_open(item) and _branches(item) == (head, base):
                return self._pull_request(item)
        items = await self._api.paginate(
            f"{self._repo}/pulls",
            params={"state": "open", "base_branch": base, "limit": _LIMIT},
            what=what,
        )
        for item in items:
            if _is_open(item) and _branches(item) == (head, base):
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
        # Find first: a retried activity must not open a second pull request.
        pull = await self.find_pull_request(head, base)
        if pull is None:
            payload: dict[str, object] = {
                "head": head,
                "base": base,
                "title": _with_draft(title, draft),
                "body": body,
            }
            if labels:
                payload["labels"] = await self._label_ids(labels)
            try:
                created = await self._api.request_json(
                    "POST",
                    f"{self._repo}/pulls",
                    json=payload,
                    what=f"open a pull request {head} → {base} in {self.repository}",
                )
            except ForgeError as exc:
                if exc.status != 409:
                    raise
                # Opened meanwhile (a concurrent or half-finished earlier try): that one is it.
                pull = await self.find_pull_request(head, base)
                if pull is None:
                    raise
            else:
                pull = self._pull_request(created)
        if reviewers:
            # Also for a pull request found open: an earlier try may have stopped before this
            # step, and asking again for the same reviewers changes nothing.
            await self._api.request_json(
                "POST",
                f"{self._repo}/pulls/{pull.number}/requested_reviewers",
                json={"reviewers": reviewers},
                what=f"ask {', '.join(reviewers)} to review #{pull.number} in {self.repository}",
                idempotent=True,
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
        path = f"{self._repo}/pulls/{number}"
        what = f"update pull request #{number} in {self.repository}"
        payload: dict[str, object] = {}
        if title is not None:
            # A new title keeps the pull request's draft state, which lives in the title.
            current = await self._api.request_json("GET", path, what=what)
            _, was_draft = split_draft(str(current.get("title") or ""))
            payload["title"] = _with_draft(title, was_draft)
        if body is not None:
            payload["body"] = body
        if base is not None:
            payload["base"] = base
        if not payload:
            return self._pull_request(await self._api.request_json("GET", path, what=what))
        updated = await self._api.request_json("PATCH", path, json=payload, what=what)
        return self._pull_request(updated)

    async def _label_ids(self, names: list[str]) -> list[int]:
        labels = await self._api.paginate(
            f"{self._repo}/labels",
            params={"limit": _LIMIT},
            what=f"list the labels of {self.repository}",
        )
        ids = {str(label.get("name")): int(label["id"]) for label in labels}
        missing = [name for name in names if name not in ids]
        if missing:
            # Gitea ignores label ids it does not know: say so rather than lose them quietly.
            raise ForgeError(
                f"Gitea: {self.repository} has no label {', '.join(map(repr, missing))}; "
                "create it in the repository's labels or leave it out",
                status=422,
            )
        return [ids[name] for name in names]

    # -- issues and comments -----------------------------------------------------------------

    async def list_issues(
        self,
        *,
        state: Literal["open", "closed", "all"] = "open",
        label: str | None = None,
        milestone: str | None = None,
    ) -> list[Issue]:
        params: dict[str, str | int] = {"state": state, "type": "issues", "limit": _LIMIT}
        if label is not None:
            params["labels"] = label
        if milestone is not None:
            params["milestones"] = milestone
        items = await self._api.paginate(
            f"{self._repo}/issues", params=params, what=f"list the issues of {self.repository}"
        )
        # type=issues is honoured since Gitea 1.14; checked again for older servers.
        return [_issue(item) for item in items if not item.get("pull_request")]

    async def get_issue(self, number: int) -> Issue | None:
        item = await self._api.request_json(
            "GET",
            f"{self._repo}/issues/{number}",
            what=f"read issue #{number} of {self.repository}",
            missing_ok=True,
        )
        if item is None or item.get("pull_request"):
            return None  # a pull request shares the numbers, but is not an issue
        return _issue(item)

    async def list_comments(self, number: int) -> list[Comment]:
        comments = await self._api.paginate(
            f"{self._repo}/issues/{number}/comments",
            what=f"list the comments on issue #{number} of {self.repository}",
        )
        return [_comment(item) for item in comments]

    async def add_comment(self, number: int, body: str) -> Comment:
        item = await self._api.request_json(
            "POST",
            f"{self._repo}/issues/{number}/comments",
            json={"body": body},
            what=f"comment on issue #{number} of {self.repository}",
        )
        return _comment(item)

    async def update_comment(self, number: int, comment_id: int, body: str) -> Comment:
        # Gitea addresses a comment by its id alone (``number`` is not needed).
        item = await self._api.request_json(
            "PATCH",
            f"{self._repo}/issues/comments/{comment_id}",
            json={"body": body},
            what=f"update comment {comment_id} on issue #{number} of {self.repository}",
        )
        if item is None:  # 204: Gitea's answer when nothing was changed
            return Comment(id=comment_id, body=body)
        return _comment(item)

    # -- conversions -------------------------------------------------------------------------

    def _pull_request(self, item: Any) -> PullRequest:
        if not isinstance(item, dict):
            raise ForgeError(f"Gitea: a pull request of {self.repository} is not an object")
        title, draft = split_draft(str(item.get("title") or ""))
        head, base = _branches(item)
        state: Literal["open", "closed", "merged"] = (
            "merged" if item.get("merged") else "open" if _is_open(item) else "closed"
        )
        return PullRequest(
            number=int(item["number"]),
            url=str(item.get("html_url") or ""),
            head=head,
            base=base,
            state=state,
            title=title,
            body=str(item.get("body") or ""),
            draft=bool(item.get("draft")) or draft,
        )


def _with_draft(title: str, draft: bool) -> str:
    bare, _ = split_draft(title)
    return f"{DRAFT_PREFIX}{bare}" if draft else bare


def _is_open(item: Any) -> bool:
    return item.get("state") == "open" and not item.get("merged")


def _branches(item: Any) -> tuple[str, str]:
    head, base = item.get("head") or {}, item.get("base") or {}
    return str(head.get("ref") or ""), str(base.get("ref") or "")


def _issue(item: Any) -> Issue:
    milestone = item.get("milestone")
    return Issue(
        number=int(item["number"]),
        title=str(item.get("title") or ""),
        body=str(item.get("body") or ""),
        state="open" if item.get("state") == "open" else "closed",
        labels=tuple(str(label.get("name")) for label in item.get("labels") or ()),
        milestone=str(milestone["title"]) if isinstance(milestone, dict) else None,
        url=str(item.get("html_url") or ""),
    )


def _comment(item: Any) -> Comment:
    return Comment(id=int(item["id"]), body=str(item.get("body") or ""))
