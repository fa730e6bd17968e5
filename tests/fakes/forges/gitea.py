"""A fake Gitea/Forgejo API v1: pull requests, labels, issues and comments of in-memory
repositories.

Written from Gitea's swagger (``templates/swagger/v1_json.tmpl``) and the handlers it is
generated from (``routers/api/v1/repo/pull.go``, ``issue.go``, ``issue_comment.go``,
``services/context/api.go``), Gitea 1.22; Forgejo answers the same. It refuses what Gitea
refuses:

- auth is ``Authorization: token …`` (or ``Bearer …``); an unknown token is no user (Gitea
  does not fail it by itself), so a private repository is 404 "The target couldn't be found."
  and a write to a public one 401 "token is required"; a token without the scope a route
  needs is 403 "token does not have at least one of required scope(s): [write:issue]";
- a pull request needs a title (422), a head other than its base (422 "There are no changes
  between the head and the base"), branches that exist in the repository's git repository
  (404), and no other open pull request for them (409 "pull request already exists for these
  targets [...]"); unknown label ids are dropped, as Gitea does;
- ``GET /pulls/{base}/{head}`` answers the pull request of any state (``find_route=False``
  plays a server older than 1.22, where the route is missing: 404);
- lists page with ``page``/``limit`` (30 by default, at most 50), ``Link`` (absolute) and
  ``X-Total-Count``; an issue's comments come unpaged; ``type=issues`` leaves pull requests
  out (they share the issues' numbers);
- errors are ``{"message": …, "url": "<base>/api/swagger"}``; scripted faults:
  :meth:`FakeGitea.rate_limit` (429 with ``Retry-After``, as a proxy in front of Gitea sends
  it: Gitea itself has no API rate limit) and :meth:`FakeGitea.server_error`.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlencode

from fakes.forges.common import BAD_JSON, Fault, Faults, branch_exists, branch_sha, read_json, serve
from fakes.forges.gitlab import Seen, add_branch, init_bare_repo
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NOT_FOUND = "The target couldn't be found."
_DRAFT_RE = re.compile(r"^\s*(wip:|\[wip\])", re.IGNORECASE)
_DEFAULT_LIMIT, _MAX_LIMIT = 30, 50  # Gitea's DEFAULT_PAGING_NUM and MAX_RESPONSE_ITEMS


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    git_dir: Path
    private: bool = True
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # pulls too: one index
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    labels: dict[int, dict[str, Any]] = field(default_factory=dict)
    index: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


Handler = Callable[[Request, Repo, dict[str, str]], Awaitable[Response]]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class FakeGitea:
    """An in-memory Gitea. ``tokens``: token → scopes (``write:repository``,
    ``read:issue``, …; ``all`` for every one). Run it with :meth:`serve`; the API is at
    ``<base>/api/v1``."""

    def __init__(self, root: Path, *, find_route: bool = True) -> None:
        self.root = root
        self.find_route = find_route
        self.tokens: dict[str, set[str]] = {}
        self.faults = Faults()
        self.seen: list[Seen] = []
        self.repos: dict[str, Repo] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._shas: dict[tuple[Path, str], str | None] = {}
        self.me = self.add_user("uet-bot")
        r = r"/repos/(?P<owner>[^/]+)/(?P<repo>[^/]+)"
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("GET", re.compile(rf"{r}/pulls"), "repository", self._list_pulls),
            ("POST", re.compile(rf"{r}/pulls"), "repository", self._create_pull),
            ("GET", re.compile(rf"{r}/pulls/(?P<index>\d+)"), "repository", self._get_pull),
            ("PATCH", re.compile(rf"{r}/pulls/(?P<index>\d+)"), "repository", self._edit_pull),
            (
                "POST",
                re.compile(rf"{r}/pulls/(?P<index>\d+)/requested_reviewers"),
                "repository",
                self._request_reviewers,
            ),
            (
                "GET",
                re.compile(rf"{r}/pulls/(?P<base>[^/]+)/(?P<head>.+)"),
                "repository",
                self._pull_by_branches,
            ),
            ("GET", re.compile(rf"{r}/labels"), "issue", self._labels),
            ("GET", re.compile(rf"{r}/issues"), "issue", self._list_issues),
            ("GET", re.compile(rf"{r}/issues/(?P<index>\d+)"), "issue", self._get_issue),
            ("GET", re.compile(rf"{r}/issues/(?P<index>\d+)/comments"), "issue", self._comments),
            ("POST", re.compile(rf"{r}/issues/(?P<index>\d+)/comments"), "issue", self._comment),
            ("PATCH", re.compile(rf"{r}/issues/comments/(?P<id>\d+)"), "issue", self._edit),
        ]
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{rest:path}", self._dispatch, methods=methods)])

    # -- seeding ---------------------------------------------------------------------------

    def add_token(self, token: str, scopes: Iterable[str] = ("all",)) -> str:
        self.tokens[token] = set(scopes)
        return token

    def add_user(self, login: str) -> dict[str, Any]:
        user = {"id": next(self._ids), "login": login, "username": login, "full_name": ""}
        self.users[login] = user
        return user

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = True,
        default_branch: str = "main",
        git_dir: Path | None = None,
    ) -> Repo:
        """``git_dir``: see the GitLab fake's add_project."""
        owner, name = full_name.split("/")
        if git_dir is None:
            git_dir = self.root / f"{owner}__{name}.git"
            init_bare_repo(git_dir, default_branch)
        repo = Repo(next(self._ids), owner, name, git_dir, private)
        self.repos[full_name] = repo
        return repo

    def git_dir(self, full_name: str) -> Path:
        return self.repos[full_name].git_dir

    def push_branch(self, full_name: str, branch: str, start: str = "main") -> str:
        self._shas.clear()
        return add_branch(self.repos[full_name].git_dir, branch, start)

    def _sha(self, git_dir: Path, branch: str) -> str | None:
        """A branch's head, remembered within one request (see the GitLab fake)."""
        key = (git_dir, branch)
        if key not in self._shas:
            self._shas[key] = branch_sha(git_dir, branch)
        return self._shas[key]

    def add_label(self, full_name: str, name: str, color: str = "#00aabb") -> dict[str, Any]:
        label: dict[str, Any] = {
            "id": next(self._ids),
            "name": name,
            "color": color.lstrip("#"),
            "description": "",
        }
        self.repos[full_name].labels[label["id"]] = label
        return label

    def add_issue(
        self,
        full_name: str,
        title: str,
        body: str = "",
        *,
        labels: Iterable[str] = (),
        milestone: str | None = None,
        state: str = "open",
    ) -> dict[str, Any]:
        repo = self.repos[full_name]
        by_name = {label["name"]: label for label in repo.labels.values()}
        issue = self._new_issue(repo, title, body)
        issue["labels"] = [by_name.get(n) or self.add_label(full_name, n) for n in labels]
        issue["milestone"] = (
            None if milestone is None else {"id": next(self._ids), "title": milestone}
        )
        issue["state"] = state
        return issue

    def add_comment(self, full_name: str, index: int, body: str) -> dict[str, Any]:
        comment = {
            "id": next(self._ids),
            "body": body,
            "user": self.me,
            "created_at": _now(),
            "updated_at": _now(),
            "_index": index,
        }
        self.repos[full_name].comments[index].append(comment)
        return comment

    def set_pull_state(self, full_name: str, index: int, state: str) -> None:
        """``closed`` or ``merged``, as done in the web UI."""
        pull = self.repos[full_name].issues[index]
        pull["state"] = "closed"
        pull["pull"]["merged"] = state == "merged"

    # -- scripted faults -------------------------------------------------------------------

    def rate_limit(self, *, times: int = 1, retry_after: int = 7) -> None:
        self.faults.push(
            Fault(429, {"message": "rate limited"}, {"Retry-After": str(retry_after)}, times=times)
        )

    def server_error(self, status: int = 500, *, times: int = 1, method: str | None = None) -> None:
        self.faults.push(Fault(status, {"message": "", "url": ""}, times=times, method=method))

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        with serve(self.app) as base:
            yield f"{base}/api/v1"

    # -- the HTTP side ---------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        self._shas.clear()  # branch heads are remembered within one request only
        raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1")
        path = unquote(raw.split("?", 1)[0])
        self.seen.append(
            Seen(
                request.method,
                path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        if not path.startswith("/api/v1/"):
            return self._error(request, 404, "404 page not found")
        path = path[len("/api/v1") :]
        fault = self.faults.take(request.method, path)
        if fault is not None:
            return JSONResponse(dict(fault.body), fault.status, headers=dict(fault.headers))
        for method, pattern, scope, handler in self._routes:
            match = pattern.fullmatch(path)
            if not match or method != request.method:
                continue
            if handler == self._pull_by_branches and not self.find_route:
                break
            params = match.groupdict()
            user, scopes = self._user(request)
            repo = self.repos.get(f"{params['owner']}/{params['repo']}")
            # repoAssignment comes first: a repository the caller cannot see does not exist.
            if repo is None or (repo.private and user is None):
                return self._error(request, 404, NOT_FOUND)
            if method != "GET" and user is None:
                return self._error(request, 401, "token is required")
            needed = f"{'read' if method == 'GET' else 'write'}:{scope}"
            if user is not None and not (
                "all" in scopes or needed in scopes or f"write:{scope}" in scopes
            ):
                return self._error(
                    request,
                    403,
                    f"token does not have at least one of required scope(s): [{needed}]",
                )
            with self._lock:
                return await handler(request, repo, params)
        return self._error(request, 404, NOT_FOUND)

    def _user(self, request: Request) -> tuple[dict[str, Any] | None, set[str]]:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        token = value if scheme.lower() in ("token", "bearer") else None
        token = (
            token or request.query_params.get("token") or request.query_params.get("access_token")
        )
        if token is None or token not in self.tokens:
            return None, set()
        return self.me, self.tokens[token]

    def _error(self, request: Request, status: int, message: str) -> JSONResponse:
        swagger = f"{str(request.base_url).rstrip('/')}/api/swagger"
        return JSONResponse({"message": message, "url": swagger}, status)

    async def _body(self, request: Request) -> dict[str, Any] | Response:
        body = await read_json(request)
        if body is BAD_JSON or not isinstance(body, dict):
            return self._error(request, 422, "invalid JSON body")
        return body

    def _page(self, request: Request, items: list[Any]) -> Response:
        try:
            limit = int(request.query_params.get("limit", 0))
            page = max(1, int(request.query_params.get("page", 1)))
        except ValueError:
            limit, page = 0, 1
        limit = _DEFAULT_LIMIT if limit <= 0 else min(limit, _MAX_LIMIT)
        last = max(1, -(-len(items) // limit))
        rels: list[tuple[str, int]] = []
        if page < last:
            rels += [("next", page + 1), ("last", last)]
        if page > 1:
            rels += [("first", 1), ("prev", page - 1)]
        base = str(request.base_url).rstrip("/")
        raw = (request.scope.get("raw_path") or b"").decode("latin-1").split("?", 1)[0]
        links = [
            f'<{base}{raw}?{urlencode({**dict(request.query_params), "page": str(n)})}>; rel="{rel}"'
            for rel, n in rels
        ]
        headers = {"X-Total-Count": str(len(items))}
        if links:
            headers["Link"] = ",".join(links)
        return JSONResponse(items[(page - 1) * limit : page * limit], headers=headers)

    # pulls

    def _pulls(self, repo: Repo) -> list[dict[str, Any]]:
        return [i for i in repo.issues.values() if i.get("pull")]

    async def _list_pulls(self, request: Request, repo: Repo, _: dict[str, str]) -> Response:
        state = request.query_params.get("state", "open")
        base = request.query_params.get("base_branch")
        found = [
            p
            for p in self._pulls(repo)
            if state in ("all", p["state"]) and base in (None, p["pull"]["base"])
        ]
        found.sort(key=lambda p: p["number"], reverse=True)  # newest first
        return self._page(request, [self._pull(request, repo, p) for p in found])

    async def _get_pull(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        pull = repo.issues.get(int(m["index"]))
        if pull is None or not pull.get("pull"):
            return self._error(request, 404, NOT_FOUND)
        return JSONResponse(self._pull(request, repo, pull))

    async def _pull_by_branches(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        for pull in self._pulls(repo):  # oldest first, whatever its state, as Gitea does
            if (pull["pull"]["base"], pull["pull"]["head"]) == (m["base"], m["head"]):
                return JSONResponse(self._pull(request, repo, pull))
        return self._error(request, 404, NOT_FOUND)

    async def _create_pull(self, request: Request, repo: Repo, _: dict[str, str]) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if not str(body.get("title") or "").strip():
            return self._error(request, 422, "[Title]: Required")
        head, base = str(body.get("head") or ""), str(body.get("base") or "")
        if head == base:
            return self._error(
                request,
                422,
                "Invalid PullRequest: There are no changes between the head and the base",
            )
        if not (branch_exists(repo.git_dir, head) and branch_exists(repo.git_dir, base)):
            return self._error(request, 404, NOT_FOUND)
        for other in self._pulls(repo):
            if other["state"] == "open" and (other["pull"]["head"], other["pull"]["base"]) == (
                head,
                base,
            ):
                return self._error(
                    request,
                    409,
                    f"pull request already exists for these targets [id: {other['id']}, "
                    f"issue_id: {other['number']}, head_repo_id: {repo.id}, base_repo_id: "
                    f"{repo.id}, head_branch: {head}, base_branch: {base}]",
                )
        pull = self._new_issue(repo, str(body["title"]), str(body.get("body") or ""))
        pull["labels"] = [repo.labels[i] for i in body.get("labels") or [] if i in repo.labels]
        pull["pull"] = {"head": head, "base": base, "merged": False, "reviewers": []}
        return JSONResponse(self._pull(request, repo, pull), 201)

    async def _edit_pull(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        pull = repo.issues.get(int(m["index"]))
        if pull is None or not pull.get("pull"):
            return self._error(request, 404, NOT_FOUND)
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if body.get("title"):
            pull["title"] = str(body["title"])
        if body.get("body") is not None:
            pull["body"] = str(body["body"])
        base = body.get("base")
        if base and base != pull["pull"]["base"]:
            if not branch_exists(repo.git_dir, str(base)):
                return self._error(request, 404, f"new base '{base}' not exist")
            pull["pull"]["base"] = str(base)
        pull["updated_at"] = _now()
        return JSONResponse(self._pull(request, repo, pull), 201)  # Gitea's 201 ("TODO: 200")

    async def _request_reviewers(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        pull = repo.issues.get(int(m["index"]))
        if pull is None or not pull.get("pull"):
            return self._error(request, 404, NOT_FOUND)
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        for name in body.get("reviewers") or []:
            if name not in self.users:
                return self._error(request, 422, f"user does not exist [uid: 0, name: {name}]")
            if name not in pull["pull"]["reviewers"]:
                pull["pull"]["reviewers"].append(name)
        reviews = [
            {"id": next(self._ids), "user": self.users[n], "state": "REQUEST_REVIEW"}
            for n in body.get("reviewers") or []
        ]
        return JSONResponse(reviews, 201)

    # labels, issues, comments

    async def _labels(self, request: Request, repo: Repo, _: dict[str, str]) -> Response:
        return self._page(request, list(repo.labels.values()))

    async def _list_issues(self, request: Request, repo: Repo, _: dict[str, str]) -> Response:
        q = request.query_params
        state, kind = q.get("state", "open"), q.get("type")
        labels = [x for x in (q.get("labels") or "").split(",") if x]
        milestones = [x for x in (q.get("milestones") or "").split(",") if x]
        found = [
            i
            for i in repo.issues.values()
            if state in ("all", i["state"])
            and (kind is None or (kind == "pulls") == bool(i.get("pull")))
            # The swagger: "issues that have any of these labels"; unknown ones discarded.
            and (not labels or any(label["name"] in labels for label in i["labels"]))
            and (not milestones or (i["milestone"] or {}).get("title") in milestones)
        ]
        found.sort(key=lambda i: i["number"], reverse=True)
        return self._page(request, [self._issue(request, repo, i) for i in found])

    async def _get_issue(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        issue = repo.issues.get(int(m["index"]))
        if issue is None:
            return self._error(request, 404, NOT_FOUND)
        return JSONResponse(self._issue(request, repo, issue))

    async def _comments(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        index = int(m["index"])
        if index not in repo.issues:
            return self._error(request, 404, NOT_FOUND)
        shown = [self._shown(c) for c in repo.comments[index]]
        return JSONResponse(shown, headers={"X-Total-Count": str(len(shown))})  # no pages

    async def _comment(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        index = int(m["index"])
        if index not in repo.issues:
            return self._error(request, 404, NOT_FOUND)
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if not str(body.get("body") or "").strip():
            return self._error(request, 422, "[Body]: Required")
        return JSONResponse(
            self._shown(self.add_comment(repo.full_name, index, str(body["body"]))), 201
        )

    async def _edit(self, request: Request, repo: Repo, m: dict[str, str]) -> Response:
        wanted = int(m["id"])
        comment = next(
            (c for comments in repo.comments.values() for c in comments if c["id"] == wanted), None
        )
        if comment is None:
            return self._error(request, 404, f"comment does not exist [id: {wanted}]")
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        if not str(body.get("body") or "").strip():
            return self._error(request, 422, "[Body]: Required")
        comment["body"] = str(body["body"])
        comment["updated_at"] = _now()
        return JSONResponse(self._shown(comment))

    # -- rendering -------------------------------------------------------------------------

    def _new_issue(self, repo: Repo, title: str, body: str) -> dict[str, Any]:
        index = next(repo.index)
        issue: dict[str, Any] = {
            "id": next(self._ids),
            "number": index,
            "title": title,
            "body": body,
            "state": "open",
            "labels": [],
            "milestone": None,
            "user": self.me,
            "created_at": _now(),
            "updated_at": _now(),
        }
        repo.issues[index] = issue
        repo.comments[index] = []
        return issue

    def _shown(self, comment: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in comment.items() if not k.startswith("_")}

    def _issue(self, request: Request, repo: Repo, issue: dict[str, Any]) -> dict[str, Any]:
        origin = str(request.base_url).rstrip("/")
        kind = "pulls" if issue.get("pull") else "issues"
        shown = {k: v for k, v in issue.items() if k != "pull"}
        shown["html_url"] = f"{origin}/{repo.full_name}/{kind}/{issue['number']}"
        shown["comments"] = len(repo.comments[issue["number"]])
        shown["pull_request"] = (
            {"merged": issue["pull"]["merged"], "html_url": shown["html_url"]}
            if issue.get("pull")
            else None
        )
        return shown

    def _pull(self, request: Request, repo: Repo, pull: dict[str, Any]) -> dict[str, Any]:
        shown = self._issue(request, repo, pull)
        info = pull["pull"]

        def ref(branch: str) -> dict[str, Any]:
            sha = self._sha(repo.git_dir, branch)
            return {"label": branch, "ref": branch, "sha": sha, "repo_id": repo.id}

        shown.pop("pull_request")
        shown |= {
            "head": ref(info["head"]),
            "base": ref(info["base"]),
            "merged": info["merged"],
            "mergeable": True,
            "draft": bool(_DRAFT_RE.match(pull["title"])),
            "requested_reviewers": [self.users[n] for n in info["reviewers"]],
            "diff_url": f"{shown['html_url']}.diff",
            "patch_url": f"{shown['html_url']}.patch",
        }
        return shown
