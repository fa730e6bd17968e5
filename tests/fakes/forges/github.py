"""A fake GitHub REST API: the routes uet uses, answering as api.github.com does.

Written from ``github/rest-api-description``,
``descriptions/api.github.com/api.github.com.2022-11-28.yaml`` (info.version 1.1.4):
``pulls/list``, ``pulls/create``, ``pulls/get``, ``pulls/update``,
``pulls/request-reviewers``, ``issues/list-for-repo``, ``issues/get``, ``issues/add-labels``,
``issues/list-comments``, ``issues/create-comment``, ``issues/update-comment``,
``issues/list-milestones``, ``repos/get``; the error bodies are the description's
``basic-error`` and ``validation-error`` schemas, the rate-limit headers those of its
"Rate limits for the REST API" guide.

What it rejects, as GitHub does:

- an unknown token: 401 ``Bad credentials`` (on every route); no token: reads of a public
  repository only, a write is 401 ``Requires authentication``; a read-only token writing:
  403 ``Resource not accessible by personal access token``;
- an unknown repository (or one the token may not see) and unknown routes: 404 ``Not Found``;
- a body that is not JSON: 400 ``Problems parsing JSON``; JSON of the wrong shape:
  422 ``Invalid request.``; unknown fields are ignored;
- a pull request whose head or base is no branch of the repository's git directory, whose
  head has no commits the base lacks (``head == base`` included), or whose head already has an
  open one into that base: 422 ``Validation Failed`` with GitHub's ``errors``;
- reviewers who are no collaborators, or the pull request's author: 422;
- an unsupported ``X-GitHub-Api-Version``: 400;
- past the primary rate limit: 403 (or 429) with ``x-ratelimit-remaining: 0`` and the reset;
  scripted secondary limits (``retry-after``) and 5xx through :meth:`FakeGitHub.fail`.

Use: ``with FakeGitHub() as gh: gh.add_token("t"); gh.add_repo("o/r", git_dir)`` and point
the client at ``gh.url``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .common import BAD_JSON, Fault, Faults, branch_exists, branch_sha, json_error, page_of
from .common import read_json as _read_json
from .common import serve as _serve

DOCS = "https://docs.github.com/rest"
API_VERSIONS = frozenset({"2022-11-28", "2026-03-10"})
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
    "again. If you reach out to GitHub Support for help, please include the request ID "
    "0000:0000:0000000:0000000:00000000."
)

Handler = Callable[[Request, "Caller"], Awaitable[Response]]


@dataclass
class Token:
    login: str
    write: bool = True
    repos: set[str] | None = None  # None: every repository (a classic token's `repo` scope)
    limit: int = 5000
    remaining: int = 5000
    reset: int = 0  # epoch seconds; 0: an hour after the first request
    status_when_limited: int = 403


@dataclass
class Caller:
    token: Token | None  # None: anonymous


@dataclass
class Repo:
    owner: str
    name: str
    git_dir: Path
    private: bool = False
    default_branch: str = "main"
    collaborators: set[str] = field(default_factory=set)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)  # pulls are issues too
    milestones: dict[int, dict[str, Any]] = field(default_factory=dict)
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    next_number: int = 1

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class FakeGitHub:
    """In-memory GitHub served on loopback (``url``) while the ``with`` block runs."""

    def __init__(self) -> None:
        self.url = ""
        self.repos: dict[str, Repo] = {}  # key: "owner/name" lowercased (names ignore case)
        self.tokens: dict[str, Token] = {}
        self.comments: dict[int, dict[str, Any]] = {}  # ids are global, as GitHub's are
        self.requests: list[dict[str, Any]] = []  # method, path, query, api_version, accept
        self.faults = Faults()
        self._ids = itertools.count(1_000_001)
        self._lock = threading.RLock()
        self._tmp: list[Path] = []
        self._server: Any = None
        self.app = Starlette(
            routes=self._routes(),
            exception_handlers={HTTPException: self._http_exception},
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeGitHub:
        self._server = _serve(self.app)
        self.url = self._server.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.__exit__(kind, exc, tb)
            self._server = None
        for path in self._tmp:
            shutil.rmtree(path, ignore_errors=True)

    # -- seeding ---------------------------------------------------------------------------

    def add_token(
        self,
        token: str,
        *,
        login: str = "uet-bot",
        write: bool = True,
        repos: list[str] | None = None,
    ) -> Token:
        entry = Token(login, write, None if repos is None else {r.lower() for r in repos})
        self.tokens[token] = entry
        return entry

    def add_repo(
        self,
        full_name: str,
        git_dir: Path | None = None,
        *,
        private: bool = False,
        default_branch: str = "main",
        collaborators: list[str] | None = None,
    ) -> Repo:
        """A repository whose branches are those of ``git_dir`` (a bare repository is made,
        with an empty commit on ``default_branch``, when none is given)."""
        owner, _, name = full_name.partition("/")
        if git_dir is None:
            tmp = Path(tempfile.mkdtemp(prefix="fake-github-"))
            self._tmp.append(tmp)
            git_dir = tmp / f"{name}.git"
            _git("init", "--bare", "-q", "-b", default_branch, str(git_dir))
            tree = _git("--git-dir", str(git_dir), "hash-object", "-t", "tree", "-w", "--stdin")
            env = _author()
            commit = _git("--git-dir", str(git_dir), "commit-tree", tree, "-m", "init", env=env)
            _git("--git-dir", str(git_dir), "update-ref", f"refs/heads/{default_branch}", commit)
        repo = Repo(owner, name, Path(git_dir), private, default_branch, set(collaborators or ()))
        self.repos[full_name.lower()] = repo
        return repo

    def repo(self, full_name: str) -> Repo:
        return self.repos[full_name.lower()]

    def add_milestone(self, full_name: str, title: str, *, state: str = "open") -> int:
        repo = self.repo(full_name)
        number = len(repo.milestones) + 1
        repo.milestones[number] = {"number": number, "title": title, "state": state}
        return number

    def add_issue(
        self,
        full_name: str,
        title: str,
        body: str | None = "",
        *,
        state: str = "open",
        labels: list[str] | None = None,
        milestone: int | None = None,
        author: str = "octocat",
    ) -> int:
        repo = self.repo(full_name)
        with self._lock:
            number = self._new_issue(repo, title, body, author)
            issue = repo.issues[number]
            issue["state"] = state
            issue["labels"] = [self._label(repo, name) for name in labels or ()]
            issue["milestone"] = milestone
            if state == "closed":
                issue["closed_at"] = _now()
        return number

    def add_comment(self, full_name: str, number: int, body: str, author: str = "octocat") -> int:
        repo = self.repo(full_name)
        with self._lock:
            return self._new_comment(repo, number, body, author)

    # -- scripted trouble ------------------------------------------------------------------

    def fail(
        self,
        status: int = 502,
        *,
        times: int = 1,
        method: str | None = None,
        path_prefix: str = "",
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """The next ``times`` matching requests get ``status`` (a 5xx by default)."""
        body = {
            "message": message or _REASONS.get(status, "Server Error"),
            "documentation_url": DOCS,
        }
        self.faults.push(Fault(status, body, headers or {}, times, method, path_prefix))

    def secondary_limit(self, retry_after: int = 1, *, times: int = 1, status: int = 403) -> None:
        body = {
            "message": SECONDARY_MESSAGE,
            "documentation_url": "https://docs.github.com/free-pro-team@latest/rest/overview/"
            "rate-limits-for-the-rest-api#about-secondary-rate-limits",
        }
        self.faults.push(Fault(status, body, {"retry-after": str(retry_after)}, times))

    def rate_limit(
        self,
        token: str,
        *,
        remaining: int,
        reset_in: int = 3600,
        limit: int = 5000,
        status: int = 403,
    ) -> None:
        """Set ``token``'s primary limit: once ``remaining`` requests are spent, ``status``."""
        entry = self.tokens[token]
        entry.remaining, entry.limit = remaining, limit
        entry.reset = int(time.time()) + reset_in
        entry.status_when_limited = status

    # -- HTTP ------------------------------------------------------------------------------

    def _routes(self) -> list[Route]:
        repo = "/repos/{owner}/{name}"
        table: list[tuple[str, str, Handler]] = [
            ("GET", repo, self._get_repo),
            ("GET", f"{repo}/pulls", self._list_pulls),
            ("POST", f"{repo}/pulls", self._create_pull),
            ("GET", f"{repo}/pulls/{{number:int}}", self._get_pull),
            ("PATCH", f"{repo}/pulls/{{number:int}}", self._update_pull),
            ("POST", f"{repo}/pulls/{{number:int}}/requested_reviewers", self._request_reviewers),
            ("GET", f"{repo}/issues", self._list_issues),
            ("PATCH", f"{repo}/issues/comments/{{comment_id:int}}", self._update_comment),
            ("GET", f"{repo}/issues/{{number:int}}", self._get_issue),
            ("POST", f"{repo}/issues/{{number:int}}/labels", self._add_labels),
            ("GET", f"{repo}/issues/{{number:int}}/comments", self._list_comments),
            ("POST", f"{repo}/issues/{{number:int}}/comments", self._create_comment),
            ("GET", f"{repo}/milestones", self._list_milestones),
        ]
        by_path: dict[str, dict[str, Handler]] = {}
        for method, path, handler in table:
            by_path.setdefault(path, {})[method] = handler
        return [
            Route(path, self._dispatch(methods), methods=[*methods, "HEAD"])
            for path, methods in by_path.items()
        ]

    def _dispatch(self, methods: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._handle(request, methods)

        return endpoint

    async def _handle(self, request: Request, methods: dict[str, Handler]) -> Response:
        """The checks GitHub makes before a route's own: server trouble, credentials, the API
        version, the primary rate limit; then the route; rate-limit headers on every answer."""
        method = request.method
        self.requests.append(
            {
                "method": method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "api_version": request.headers.get("x-github-api-version"),
                "accept": request.headers.get("accept"),
                "authorized": "authorization" in request.headers,
            }
        )
        scripted = self.faults.response(method, request.url.path)
        if scripted is not None:
            return scripted
        caller, problem = self._authenticate(request)
        if problem is not None:
            return problem
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            return _error(400, f"Invalid API version provided: {version}.")
        headers: dict[str, str] = {"x-github-api-version-selected": version or "2022-11-28"}
        token = caller.token
        if token is not None:
            with self._lock:
                now = int(time.time())
                if token.reset <= now:
                    token.reset, token.remaining = now + 3600, token.limit
                limited = token.remaining <= 0
                if not limited:
                    token.remaining -= 1
            headers |= {
                "x-ratelimit-limit": str(token.limit),
                "x-ratelimit-remaining": str(max(0, token.remaining)),
                "x-ratelimit-reset": str(token.reset),
                "x-ratelimit-used": str(token.limit - max(0, token.remaining)),
                "x-ratelimit-resource": "core",
            }
            if limited:
                return _error(
                    token.status_when_limited,
                    f"API rate limit exceeded for user ID {_stable_id(token.login)}. "
                    "If you reach out to GitHub Support for help, please include the request "
                    "ID 0000:0000:0000000:0000000:00000000.",
                    doc="https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                    headers=headers,
                )
        handler = methods.get("GET" if method == "HEAD" else method)
        if handler is None:
            response: Response = _error(404, "Not Found")
        else:
            response = await handler(request, caller)
        response.headers.update(headers)
        return response

    def _authenticate(self, request: Request) -> tuple[Caller, Response | None]:
        header = request.headers.get("authorization")
        if header is None:
            return Caller(None), None
        scheme, _, value = header.partition(" ")
        token = self.tokens.get(value.strip()) if scheme.lower() in ("bearer", "token") else None
        if token is None:
            return Caller(None), _error(401, "Bad credentials")
        return Caller(token), None

    async def _http_exception(self, request: Request, exc: Exception) -> Response:
        # Unknown routes, and known ones with another method: GitHub answers 404 JSON to both.
        return _error(404, "Not Found")

    def _repo_for(self, request: Request, caller: Caller, *, write: bool) -> Repo | Response:
        key = f"{request.path_params['owner']}/{request.path_params['name']}".lower()
        repo = self.repos.get(key)
        token = caller.token
        visible = repo is not None and (
            (token is None and not repo.private)
            or (token is not None and (token.repos is None or key in token.repos))
        )
        if repo is None or not visible:
            return _error(404, "Not Found")
        if write and token is None:
            return _error(401, "Requires authentication")
        if write and token is not None and not token.write:
            return _error(403, "Resource not accessible by personal access token")
        return repo

    # -- repositories, pull requests -------------------------------------------------------

    async def _get_repo(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        return JSONResponse(self._repo_json(repo))

    async def _list_pulls(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        query = request.query_params
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation("PullRequest", "state", "invalid")
        head, base = query.get("head"), query.get("base")
        with self._lock:
            pulls = [i for i in repo.issues.values() if "pull" in i]
            if state != "all":
                pulls = [p for p in pulls if p["state"] == state]
            if head is not None:
                # "user:ref"; GitHub ignores a head without the user part (matches everything).
                user, sep, ref = head.partition(":")
                if sep:
                    pulls = [
                        p
                        for p in pulls
                        if user.lower() == repo.owner.lower() and p["pull"]["head"] == ref
                    ]
            if base is not None:
                pulls = [p for p in pulls if p["pull"]["base"] == base]
            pulls.sort(key=lambda p: p["number"], reverse=True)  # sort=created, direction=desc
            page = page_of(request, pulls)
            body = [self._pull_json(repo, p) for p in page.items]
        return JSONResponse(body, headers=page.headers(request))

    async def _get_pull(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        pull = repo.issues.get(request.path_params["number"])
        if pull is None or "pull" not in pull:
            return _error(404, "Not Found")
        return JSONResponse(self._pull_json(repo, pull))

    async def _create_pull(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        shape = _check_types(
            data, {"title": str, "head": str, "base": str, "body": str, "draft": bool}
        )
        if shape is not None:
            return shape
        missing = [f for f in ("head", "base") if f not in data]
        if "title" not in data and "issue" not in data:
            missing.insert(0, "title")
        if missing:
            return _validation("PullRequest", missing, "missing_field")
        head_spec, base = data["head"], data["base"]
        user, sep, head = head_spec.rpartition(":")
        if sep and user.lower() != repo.owner.lower():
            return _validation("PullRequest", "head", "invalid")  # forks are not modelled
        head = head if sep else head_spec
        invalid = [
            f for f, b in (("base", base), ("head", head)) if not branch_exists(repo.git_dir, b)
        ]
        if invalid:
            return _validation("PullRequest", invalid, "invalid")
        with self._lock:
            for other in repo.issues.values():
                pull = other.get("pull")
                if (
                    pull
                    and other["state"] == "open"
                    and pull["head"] == head
                    and pull["base"] == base
                ):
                    return _custom(f"A pull request already exists for {repo.owner}:{head}.")
            if not _commits_between(repo.git_dir, base, head):
                return _custom(f"No commits between {base} and {head}")
            author = caller.token.login if caller.token else "ghost"
            number = self._new_issue(repo, data.get("title", ""), data.get("body"), author)
            issue = repo.issues[number]
            issue["pull"] = {
                "head": head,
                "base": base,
                "draft": bool(data.get("draft", False)),
                "merged_at": None,
                "requested_reviewers": [],
                "requested_teams": [],
            }
            body = self._pull_json(repo, issue)
        location = f"{self.url}/repos/{repo.full_name}/pulls/{number}"
        return JSONResponse(body, status_code=201, headers={"Location": location})

    async def _update_pull(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        issue = repo.issues.get(request.path_params["number"])
        if issue is None or "pull" not in issue:
            return _error(404, "Not Found")
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        shape = _check_types(data, {"title": str, "body": str, "base": str, "state": str})
        if shape is not None:
            return shape
        if "state" in data and data["state"] not in ("open", "closed"):
            return _validation("PullRequest", "state", "invalid")
        if "base" in data and not branch_exists(repo.git_dir, data["base"]):
            return _validation("PullRequest", "base", "invalid")
        with self._lock:
            for key in ("title", "body"):
                if key in data:
                    issue[key] = data[key]
            if "base" in data:
                issue["pull"]["base"] = data["base"]
            if "state" in data:
                issue["state"] = data["state"]
                issue["closed_at"] = _now() if data["state"] == "closed" else None
            issue["updated_at"] = _now()
            return JSONResponse(self._pull_json(repo, issue))

    async def _request_reviewers(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        issue = repo.issues.get(request.path_params["number"])
        if issue is None or "pull" not in issue:
            return _error(404, "Not Found")
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        shape = _check_types(data, {"reviewers": list, "team_reviewers": list})
        if shape is not None:
            return shape
        users = [str(u) for u in data.get("reviewers", [])]
        teams = [str(t) for t in data.get("team_reviewers", [])]
        if issue["user"] in users:
            return _custom("Review cannot be requested from pull request author.")
        known = {c.lower() for c in repo.collaborators}
        if any(u.lower() not in known for u in users) or teams:
            # Teams need an organization; the fake's repositories have only collaborators.
            return _custom(
                "Reviews may only be requested from collaborators. One or more of the users "
                "or teams you specified is not a collaborator of the "
                f"{repo.full_name} repository."
            )
        with self._lock:
            requested = issue["pull"]["requested_reviewers"]
            requested.extend(u for u in users if u not in requested)
            return JSONResponse(self._pull_json(repo, issue), status_code=201)

    # -- issues, labels, comments, milestones ----------------------------------------------

    async def _list_issues(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        query = request.query_params
        state = query.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation("Issue", "state", "invalid")
        with self._lock:
            issues = list(repo.issues.values())
            if state != "all":
                issues = [i for i in issues if i["state"] == state]
            wanted = [x.strip() for x in query.get("labels", "").split(",") if x.strip()]
            if wanted:  # every listed label, case-insensitively
                issues = [
                    i for i in issues
                    if {w.lower() for w in wanted} <= {lab["name"].lower() for lab in i["labels"]}
                ]  # fmt: skip
            milestone = query.get("milestone")
            if milestone == "*":
                issues = [i for i in issues if i["milestone"] is not None]
            elif milestone == "none":
                issues = [i for i in issues if i["milestone"] is None]
            elif milestone is not None:
                if not milestone.isdigit():
                    return _validation("Issue", "milestone", "invalid")
                if int(milestone) not in repo.milestones:
                    return _error(404, "Not Found")
                issues = [i for i in issues if i["milestone"] == int(milestone)]
            issues.sort(key=lambda i: i["number"], reverse=True)
            page = page_of(request, issues)
            body = [self._issue_json(repo, i) for i in page.items]
        return JSONResponse(body, headers=page.headers(request))

    async def _get_issue(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        issue = repo.issues.get(request.path_params["number"])
        if issue is None:
            return _error(404, "Not Found")
        return JSONResponse(self._issue_json(repo, issue))

    async def _add_labels(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        issue = repo.issues.get(request.path_params["number"])
        if issue is None:
            return _error(404, "Not Found")
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        # The description's oneOf: {"labels": [name | {name}]} or a bare array of names.
        names = data.get("labels") if isinstance(data, dict) else data
        if not isinstance(names, list):
            return _invalid("For 'links/0/schema', the body is not of any accepted shape.")
        raw = [n.get("name") if isinstance(n, dict) else n for n in names]
        flat: list[str] = [n for n in raw if isinstance(n, str) and n]
        if len(flat) != len(raw):
            return _invalid("For 'items', a label must be a non-empty string.")
        with self._lock:
            have = {lab["name"].lower() for lab in issue["labels"]}
            for name in flat:
                if name.lower() not in have:  # new names are created, as GitHub does
                    issue["labels"].append(self._label(repo, name))
                    have.add(name.lower())
            return JSONResponse(list(issue["labels"]))

    async def _list_comments(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        number = request.path_params["number"]
        if number not in repo.issues:
            return _error(404, "Not Found")
        with self._lock:
            comments = sorted(
                (c for c in self.comments.values() if c["_repo"] is repo and c["_issue"] == number),
                key=lambda c: c["id"],
            )
            page = page_of(request, comments)
            body = [_public(c) for c in page.items]
        return JSONResponse(body, headers=page.headers(request))

    async def _create_comment(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        number = request.path_params["number"]
        if number not in repo.issues:
            return _error(404, "Not Found")
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        shape = _check_types(data, {"body": str})
        if shape is not None:
            return shape
        if "body" not in data:
            return _validation("IssueComment", "body", "missing_field")
        author = caller.token.login if caller.token else "ghost"
        with self._lock:
            comment_id = self._new_comment(repo, number, data["body"], author)
            body = _public(self.comments[comment_id])
        location = f"{self.url}/repos/{repo.full_name}/issues/comments/{comment_id}"
        return JSONResponse(body, status_code=201, headers={"Location": location})

    async def _update_comment(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=True)
        if isinstance(repo, Response):
            return repo
        comment = self.comments.get(request.path_params["comment_id"])
        if comment is None or comment["_repo"] is not repo:
            return _error(404, "Not Found")
        data = await _read_json(request)
        if data is BAD_JSON:
            return _error(400, "Problems parsing JSON")
        shape = _check_types(data, {"body": str})
        if shape is not None:
            return shape
        if "body" not in data:
            return _validation("IssueComment", "body", "missing_field")
        with self._lock:
            comment["body"] = data["body"]
            comment["updated_at"] = _now()
            return JSONResponse(_public(comment))

    async def _list_milestones(self, request: Request, caller: Caller) -> Response:
        repo = self._repo_for(request, caller, write=False)
        if isinstance(repo, Response):
            return repo
        state = request.query_params.get("state", "open")
        if state not in ("open", "closed", "all"):
            return _validation("Milestone", "state", "invalid")
        items = [m for m in repo.milestones.values() if state == "all" or m["state"] == state]
        page = page_of(request, items)
        body = [self._milestone_json(repo, m["number"]) for m in page.items]
        return JSONResponse(body, headers=page.headers(request))

    # -- state and JSON shapes -------------------------------------------------------------

    def _new_issue(self, repo: Repo, title: str, body: str | None, author: str) -> int:
        number = repo.next_number
        repo.next_number += 1
        now = _now()
        repo.issues[number] = {
            "id": next(self._ids),
            "number": number,
            "title": title,
            "body": body or None,  # GitHub stores an empty body as null
            "state": "open",
            "user": author,
            "labels": [],
            "milestone": None,
            "created_at": now,
            "updated_at": now,
            "closed_at": None,
        }
        return number

    def _new_comment(self, repo: Repo, number: int, body: str, author: str) -> int:
        comment_id = next(self._ids)
        now = _now()
        base = f"{self.url}/repos/{repo.full_name}"
        self.comments[comment_id] = {
            "_repo": repo,
            "_issue": number,
            "id": comment_id,
            "node_id": f"IC_{comment_id}",
            "url": f"{base}/issues/comments/{comment_id}",
            "html_url": f"{self._web(repo)}/issues/{number}#issuecomment-{comment_id}",
            "issue_url": f"{base}/issues/{number}",
            "body": body,
            "user": _user(author),
            "created_at": now,
            "updated_at": now,
            "author_association": "MEMBER",
        }
        return comment_id

    def _label(self, repo: Repo, name: str) -> dict[str, Any]:
        key = name.lower()
        if key not in repo.labels:
            label_id = next(self._ids)
            repo.labels[key] = {
                "id": label_id,
                "node_id": f"LA_{label_id}",
                "url": f"{self.url}/repos/{repo.full_name}/labels/{name}",
                "name": name,
                "color": "ededed",
                "default": False,
                "description": None,
            }
        return repo.labels[key]

    def _web(self, repo: Repo) -> str:
        return f"{self.url}/{repo.full_name}"  # stands in for https://github.com/OWNER/REPO

    def _repo_json(self, repo: Repo) -> dict[str, Any]:
        return {
            "id": _stable_id(repo.full_name),
            "name": repo.name,
            "full_name": repo.full_name,
            "owner": _user(repo.owner),
            "private": repo.private,
            "html_url": self._web(repo),
            "url": f"{self.url}/repos/{repo.full_name}",
            "default_branch": repo.default_branch,
        }

    def _milestone_json(self, repo: Repo, number: int) -> dict[str, Any]:
        milestone = repo.milestones[number]
        issues = [i for i in repo.issues.values() if i["milestone"] == number]
        return {
            "url": f"{self.url}/repos/{repo.full_name}/milestones/{number}",
            "html_url": f"{self._web(repo)}/milestone/{number}",
            "id": 5_000_000 + number,
            "number": number,
            "title": milestone["title"],
            "description": None,
            "state": milestone["state"],
            "open_issues": sum(i["state"] == "open" for i in issues),
            "closed_issues": sum(i["state"] == "closed" for i in issues),
        }

    def _issue_json(self, repo: Repo, issue: dict[str, Any]) -> dict[str, Any]:
        number = issue["number"]
        base = f"{self.url}/repos/{repo.full_name}"
        pull = issue.get("pull")
        out: dict[str, Any] = {
            "id": issue["id"],
            "node_id": f"I_{issue['id']}",
            "url": f"{base}/issues/{number}",
            "repository_url": base,
            "comments_url": f"{base}/issues/{number}/comments",
            "html_url": f"{self._web(repo)}/{'pull' if pull else 'issues'}/{number}",
            "number": number,
            "state": issue["state"],
            "state_reason": "completed" if issue["state"] == "closed" else None,
            "title": issue["title"],
            "body": issue["body"],
            "user": _user(issue["user"]),
            "labels": list(issue["labels"]),
            "assignee": None,
            "assignees": [],
            "milestone": (
                self._milestone_json(repo, issue["milestone"]) if issue["milestone"] else None
            ),
            "locked": False,
            "comments": sum(
                c["_repo"] is repo and c["_issue"] == number for c in self.comments.values()
            ),
            "created_at": issue["created_at"],
            "updated_at": issue["updated_at"],
            "closed_at": issue["closed_at"],
            "author_association": "MEMBER",
        }
        if pull:
            out["draft"] = pull["draft"]
            out["pull_request"] = {
                "url": f"{base}/pulls/{number}",
                "html_url": f"{self._web(repo)}/pull/{number}",
                "diff_url": f"{self._web(repo)}/pull/{number}.diff",
                "patch_url": f"{self._web(repo)}/pull/{number}.patch",
                "merged_at": pull["merged_at"],
            }
        return out

    def _pull_json(self, repo: Repo, issue: dict[str, Any]) -> dict[str, Any]:
        number, pull = issue["number"], issue["pull"]
        base = f"{self.url}/repos/{repo.full_name}"

        def side(ref: str) -> dict[str, Any]:
            return {
                "label": f"{repo.owner}:{ref}",
                "ref": ref,
                "sha": branch_sha(repo.git_dir, ref) or "0" * 40,
                "user": _user(repo.owner),
                "repo": self._repo_json(repo),
            }

        return {
            "id": issue["id"],
            "node_id": f"PR_{issue['id']}",
            "url": f"{base}/pulls/{number}",
            "html_url": f"{self._web(repo)}/pull/{number}",
            "diff_url": f"{self._web(repo)}/pull/{number}.diff",
            "patch_url": f"{self._web(repo)}/pull/{number}.patch",
            "issue_url": f"{base}/issues/{number}",
            "number": number,
            "state": issue["state"],
            "locked": False,
            "title": issue["title"],
            "user": _user(issue["user"]),
            "body": issue["body"],
            "labels": list(issue["labels"]),
            "milestone": None,
            "created_at": issue["created_at"],
            "updated_at": issue["updated_at"],
            "closed_at": issue["closed_at"],
            "merged_at": pull["merged_at"],
            "merge_commit_sha": None,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [_user(u) for u in pull["requested_reviewers"]],
            "requested_teams": [],
            "head": side(pull["head"]),
            "base": side(pull["base"]),
            "author_association": "MEMBER",
            "auto_merge": None,
            "draft": pull["draft"],
            "merged": pull["merged_at"] is not None,
            "mergeable": None,
            "mergeable_state": "unknown",
        }


_REASONS = {
    500: "Server Error",
    502: "Server Error",
    503: "Service Unavailable",
    504: "We couldn't respond to your request in time. Sorry about that.",
}


def _error(
    status: int,
    message: str,
    *,
    doc: str = DOCS,
    errors: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"message": message, "documentation_url": doc}
    if errors is not None:
        body["errors"] = errors
    body["status"] = str(status)
    return json_error(status, body, headers)


def _validation(resource: str, fields: str | list[str], code: str) -> JSONResponse:
    """GitHub's ``validation-error``: one ``{resource, field, code}`` per field."""
    names = [fields] if isinstance(fields, str) else fields
    errors = [{"resource": resource, "field": f, "code": code} for f in names]
    return _error(422, "Validation Failed", errors=errors)


def _custom(message: str) -> JSONResponse:
    return _error(
        422,
        "Validation Failed",
        errors=[{"resource": "PullRequest", "code": "custom", "message": message}],
    )


def _invalid(detail: str) -> JSONResponse:
    return _error(422, f"Invalid request.\n\n{detail}")


def _check_types(data: object, types: dict[str, type]) -> JSONResponse | None:
    """The schema check GitHub runs before anything else: an object, known fields typed
    right (unknown fields are ignored)."""
    if not isinstance(data, dict):
        return _invalid(f"For 'links/0/schema', {data!r} is not an object.")
    for name, kind in types.items():
        value = data.get(name)
        if name in data and value is not None and not isinstance(value, kind):
            return _invalid(f"For 'properties/{name}', {value!r} is not a {kind.__name__}.")
    return None


def _commits_between(git_dir: Path, base: str, head: str) -> bool:
    """Whether ``head`` has a commit ``base`` lacks (else GitHub: "No commits between")."""
    done = subprocess.run(
        ["git", "-C", str(git_dir), "rev-list", "--count", f"refs/heads/{base}..refs/heads/{head}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 0 and done.stdout.strip() not in ("", "0")


def _public(comment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in comment.items() if not k.startswith("_")}


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": _stable_id(login), "type": "User", "site_admin": False}


def _stable_id(name: str) -> int:
    return zlib.crc32(name.encode()) % 10**8 + 1  # the same name, the same id, every run


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _author() -> dict[str, str]:
    return {
        "GIT_AUTHOR_NAME": "fake",
        "GIT_AUTHOR_EMAIL": "fake@example.com",
        "GIT_COMMITTER_NAME": "fake",
        "GIT_COMMITTER_EMAIL": "fake@example.com",
    }


def _git(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        input="",
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    return done.stdout.strip()
