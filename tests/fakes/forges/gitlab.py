"""A fake GitLab REST API v4: merge requests, issues, notes and users of in-memory projects.

Written from GitLab's published API documentation (``doc/api/merge_requests.md``,
``issues.md``, ``notes.md``, ``users.md``, ``rest/index.md``, ``rest/authentication.md``,
``user/gitlab_com/index.md`` for rate limits; GitLab 17.x) and the error handling of
``lib/api/merge_requests.rb`` / ``lib/api/helpers.rb``. It answers as GitLab does, and refuses
what GitLab refuses:

- a project is addressed by its numeric id or its URL-encoded path (``group%2Fproject``); a
  path whose ``/`` is not encoded is no route: 404 ``{"error": "404 Not Found"}``;
- auth is ``PRIVATE-TOKEN: …`` or ``Authorization: Bearer …``: an unknown token is 401
  ``{"message": "401 Unauthorized"}``; no token reads a (private) project as 404
  ``{"message": "404 Project Not Found"}`` and may not write (401); a ``read_api`` token that
  writes is 403 ``insufficient_scope``;
- a merge request needs ``title``, ``source_branch`` and ``target_branch`` (400
  ``{"error": "title is missing"}``), two different branches that exist in the project's git
  repository (409 / 422 with GitLab's messages), and no other open one for the same branches
  (409 ``Another open merge request already exists for this source branch: !N``); an update
  needs at least one parameter (400);
- lists page with ``page``/``per_page`` (20 by default, at most 100) and send ``X-Page``,
  ``X-Per-Page``, ``X-Next-Page``, ``X-Prev-Page``, ``X-Total``, ``X-Total-Pages`` and
  ``Link``; notes list newest first unless ``sort=asc`` and include system notes;
- scripted faults: :meth:`FakeGitLab.rate_limit` answers as GitLab's Rack::Attack throttle
  does (429, ``text/plain`` ``Retry later``, ``RateLimit-*`` and ``Retry-After`` headers),
  :meth:`FakeGitLab.server_error` a 5xx.

Each project has a bare git repository (``FakeGitLab.git_dir``); :meth:`push_branch` adds a
branch, and only branches found there can be a merge request's source or target.
"""

from __future__ import annotations

import contextlib
import email.utils
import itertools
import os
import re
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode

from fakes.forges.common import (
    BAD_JSON,
    Fault,
    Faults,
    branch_exists,
    branch_sha,
    page_of,
    read_json,
    serve,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "fake",
    "GIT_AUTHOR_EMAIL": "fake@example.invalid",
    "GIT_COMMITTER_NAME": "fake",
    "GIT_COMMITTER_EMAIL": "fake@example.invalid",
}
_DRAFT_RE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s|\[wip\]|wip:)", re.IGNORECASE)
_UPDATE_PARAMS = (
    "assignee_id, assignee_ids, reviewer_ids, description, labels, add_labels, remove_labels, "
    "milestone_id, remove_source_branch, allow_collaboration, allow_maintainer_to_push, "
    "squash, target_branch, title, state_event, discussion_locked"
)


# -- a bare git repository with branches (shared with the Gitea fake) ---------------------------


def _git(git_dir: Path, *args: str, stdin: str = "") -> str:
    done = subprocess.run(
        ["git", "-C", str(git_dir), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **_GIT_ENV},
    )
    return done.stdout.strip()


def init_bare_repo(git_dir: Path, default_branch: str = "main") -> None:
    """A bare repository whose ``default_branch`` has one (empty) commit."""
    git_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", str(git_dir)], check=True)
    tree = _git(git_dir, "mktree")
    commit = _git(git_dir, "commit-tree", tree, "-m", "initial commit")
    _git(git_dir, "update-ref", f"refs/heads/{default_branch}", commit)
    _git(git_dir, "symbolic-ref", "HEAD", f"refs/heads/{default_branch}")


def add_branch(git_dir: Path, branch: str, start: str) -> str:
    """``branch`` with one commit on top of ``start``, as a push would leave it; its sha."""
    parent = branch_sha(git_dir, start)
    if parent is None:
        raise ValueError(f"no branch {start!r} to start {branch!r} from")
    tree = _git(git_dir, "rev-parse", f"{parent}^{{tree}}")
    commit = _git(git_dir, "commit-tree", tree, "-p", parent, "-m", f"work on {branch}")
    _git(git_dir, "update-ref", f"refs/heads/{branch}", commit)
    return commit


# -- state ---------------------------------------------------------------------------------------


@dataclass
class Project:
    id: int
    path: str  # group/subgroup/project
    git_dir: Path
    merge_requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    notes: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # issue iid → notes
    labels: set[str] = field(default_factory=set)
    mr_iids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    issue_iids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


@dataclass
class Seen:
    """One request the fake received (headers lower-cased), for tests to inspect."""

    method: str
    path: str
    query: str
    headers: dict[str, str]


Handler = Callable[[Request, dict[str, str]], Awaitable[Response]]


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class FakeGitLab:
    """An in-memory GitLab. ``tokens``: token → scopes (``api`` may write, ``read_api`` only
    read). Use :meth:`serve` to run it; the API is at ``<base>/api/v4``."""

    def __init__(self, root: Path, tokens: dict[str, set[str]] | None = None) -> None:
        self.root = root
        self.tokens: dict[str, set[str]] = tokens if tokens is not None else {}
        self.faults = Faults()
        self.seen: list[Seen] = []
        self.projects: dict[str, Project] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)  # GitLab's ids (not iids) are global
        self._lock = threading.Lock()
        self._shas: dict[tuple[Path, str], str | None] = {}
        self.me = self.add_user("uet-bot")
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            ("GET", re.compile(r"/users"), self._users),
            ("GET", re.compile(r"/projects/(?P<p>[^/]+)/merge_requests"), self._list_mrs),
            ("POST", re.compile(r"/projects/(?P<p>[^/]+)/merge_requests"), self._create_mr),
            ("GET", re.compile(r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)"), self._get_mr),
            ("PUT", re.compile(r"/projects/(?P<p>[^/]+)/merge_requests/(?P<iid>\d+)"), self._put_mr),
            ("GET", re.compile(r"/projects/(?P<p>[^/]+)/issues"), self._list_issues),
            ("GET", re.compile(r"/projects/(?P<p>[^/]+)/issues/(?P<iid>\d+)"), self._get_issue),
            ("GET", re.compile(r"/projects/(?P<p>[^/]+)/issues/(?P<iid>\d+)/notes"), self._notes),
            ("POST", re.compile(r"/projects/(?P<p>[^/]+)/issues/(?P<iid>\d+)/notes"), self._add_note),
            (
                "PUT",
                re.compile(r"/projects/(?P<p>[^/]+)/issues/(?P<iid>\d+)/notes/(?P<note>\d+)"),
                self._put_note,
            ),
        ]  # fmt: skip
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        self.app = Starlette(routes=[Route("/{rest:path}", self._dispatch, methods=methods)])

    # -- seeding ---------------------------------------------------------------------------

    def add_token(self, token: str, scopes: Iterable[str] = ("api",)) -> str:
        self.tokens[token] = set(scopes)
        return token

    def add_user(self, username: str) -> dict[str, Any]:
        user = {
            "id": next(self._ids),
            "username": username,
            "name": username.title(),
            "state": "active",
            "avatar_url": None,
            "web_url": f"https://gitlab.example/{username}",
        }
        self.users[username] = user
        return user

    def add_project(
        self, path: str, default_branch: str = "main", *, git_dir: Path | None = None
    ) -> Project:
        """``git_dir``: a repository served elsewhere (a real git remote the test pushes to)
        instead of one of the fake's own."""
        if git_dir is None:
            git_dir = self.root / f"{path.replace('/', '__')}.git"
            init_bare_repo(git_dir, default_branch)
        project = Project(id=next(self._ids), path=path, git_dir=git_dir)
        self.projects[path] = project
        return project

    def git_dir(self, path: str) -> Path:
        return self.projects[path].git_dir

    def push_branch(self, path: str, branch: str, start: str = "main") -> str:
        self._shas.clear()
        return add_branch(self.projects[path].git_dir, branch, start)

    def _sha(self, git_dir: Path, branch: str) -> str | None:
        """A branch's head, remembered within one request (a git process per rendered merge
        request would make long lists slow; a push may come from a real remote any time)."""
        key = (git_dir, branch)
        if key not in self._shas:
            self._shas[key] = branch_sha(git_dir, branch)
        return self._shas[key]

    def add_issue(
        self,
        path: str,
        title: str,
        description: str | None = None,
        *,
        labels: Iterable[str] = (),
        milestone: str | None = None,
        state: str = "opened",
    ) -> dict[str, Any]:
        project = self.projects[path]
        iid = next(project.issue_iids)
        issue = {
            "id": next(self._ids),
            "iid": iid,
            "project_id": project.id,
            "title": title,
            "description": description,  # GitLab sends null for an issue never described
            "state": state,
            "labels": list(labels),
            "milestone": None
            if milestone is None
            else {"id": next(self._ids), "iid": 1, "title": milestone, "state": "active"},
            "created_at": _now(),
            "updated_at": _now(),
            "closed_at": None if state == "opened" else _now(),
            "author": self._user_basic(self.me),
            "user_notes_count": 0,
            "_path": f"{path}/-/issues/{iid}",
        }
        project.issues[iid] = issue
        project.labels.update(labels)
        project.notes[iid] = []
        return issue

    def add_note(self, path: str, iid: int, body: str, *, system: bool = False) -> dict[str, Any]:
        note = {
            "id": next(self._ids),
            "type": None,
            "body": body,
            "author": self._user_basic(self.me),
            "created_at": _now(),
            "updated_at": _now(),
            "system": system,
            "noteable_id": self.projects[path].issues[iid]["id"],
            "noteable_type": "Issue",
            "noteable_iid": iid,
            "resolvable": False,
            "confidential": False,
            "internal": False,
        }
        self.projects[path].notes[iid].append(note)
        return note

    def set_mr_state(self, path: str, iid: int, state: str) -> None:
        """Close or merge a merge request as a person would in the web UI."""
        self.projects[path].merge_requests[iid]["state"] = state

    # -- scripted faults -------------------------------------------------------------------

    def rate_limit(self, *, times: int = 1, reset_in: int = 30) -> None:
        """The next ``times`` requests are throttled as GitLab.com's Rack::Attack does."""
        reset = int(time.time()) + reset_in
        self.faults.push(
            Fault(
                429,
                {},
                {
                    "RateLimit-Name": "throttle_authenticated_api",
                    "RateLimit-Limit": "2000",
                    "RateLimit-Observed": "2001",
                    "RateLimit-Remaining": "0",
                    "RateLimit-Reset": str(reset),
                    "RateLimit-ResetTime": email.utils.formatdate(reset, usegmt=True),
                    "Retry-After": str(reset_in),
                },
                times=times,
            )
        )

    def server_error(self, status: int = 502, *, times: int = 1, method: str | None = None) -> None:
        message = {500: "500 Internal Server Error", 502: "502 Bad Gateway"}.get(
            status, f"{status} Service Unavailable"
        )
        self.faults.push(Fault(status, {"message": message}, times=times, method=method))

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Run the fake; yields the API's URL (``http://127.0.0.1:PORT/api/v4``)."""
        with serve(self.app) as base:
            yield f"{base}/api/v4"

    # -- the HTTP side ---------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        self._shas.clear()  # branch heads are remembered within one request only
        # GitLab's project id is one path segment with "/" encoded as %2F: the raw path is
        # matched, since the decoded one has lost the difference.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        path = raw.decode("latin-1").split("?", 1)[0]
        self.seen.append(
            Seen(
                request.method,
                path,
                request.url.query,
                {k.lower(): v for k, v in request.headers.items()},
            )
        )
        if not path.startswith("/api/v4/"):
            return _error(404, error="404 Not Found")
        path = path[len("/api/v4") :]
        fault = self.faults.take(request.method, path)
        if fault is not None:
            if fault.status == 429:  # Rack::Attack's answer is plain text
                return PlainTextResponse("Retry later\n", 429, headers=dict(fault.headers))
            return JSONResponse(dict(fault.body), fault.status, headers=dict(fault.headers))
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(path)
            if match and method == request.method:
                denied = self._auth(request)
                if denied is not None:
                    return denied
                with self._lock:
                    return await handler(request, match.groupdict())
        return _error(404, error="404 Not Found")

    def _token(self, request: Request) -> str | None:
        if "private-token" in request.headers:
            return request.headers["private-token"]
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" and value else None

    def _auth(self, request: Request) -> Response | None:
        token = self._token(request)
        if token is None:
            # Anonymous reads go on (and find no private project); writes need a user.
            return None if request.method == "GET" else _error(401, message="401 Unauthorized")
        scopes = self.tokens.get(token)
        if scopes is None:
            return _error(401, message="401 Unauthorized")
        if request.method != "GET" and "api" not in scopes:
            return _error(
                403,
                error="insufficient_scope",
                error_description="The request requires higher privileges than provided by "
                "the access token.",
                scope="api",
            )
        return None

    def _project(self, request: Request, ref: str) -> Project | None:
        if self._token(request) is None:
            return None  # every fake project is private
        wanted = unquote(ref)
        for project in self.projects.values():
            if wanted in (project.path, str(project.id)):
                return project
        return None

    async def _params(self, request: Request) -> dict[str, Any] | Response:
        """The parameters of a write: JSON or a form, as GitLab (Grape) takes either."""
        if "json" in request.headers.get("content-type", ""):
            body = await read_json(request)
            if body is BAD_JSON or not isinstance(body, dict):
                return _error(
                    400, error="The provided content-type 'application/json' is not valid"
                )
            return body
        raw = (await request.body()).decode()
        return {k: v[-1] for k, v in parse_qs(raw).items()}

    async def _users(self, request: Request, _: dict[str, str]) -> Response:
        name = request.query_params.get("username")
        found = [u for u in self.users.values() if name is None or u["username"] == name]
        return self._page(request, found)

    # merge requests

    async def _list_mrs(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        q = request.query_params
        state = q.get("state", "all")
        if state not in ("opened", "closed", "locked", "merged", "all"):
            return _error(400, error="state does not have a valid value")
        found = [
            mr
            for mr in project.merge_requests.values()
            if state in ("all", mr["state"])
            and q.get("source_branch") in (None, mr["source_branch"])
            and q.get("target_branch") in (None, mr["target_branch"])
            and _has_labels(mr, q.get("labels"))
        ]
        found.sort(key=lambda mr: mr["iid"], reverse=q.get("sort", "desc") == "desc")
        return self._page(request, [self._mr(request, project, mr) for mr in found])

    async def _get_mr(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        mr = project.merge_requests.get(int(m["iid"]))
        if mr is None:
            return _error(404, message="404 Not found")
        return JSONResponse(self._mr(request, project, mr))

    async def _create_mr(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        params = await self._params(request)
        if isinstance(params, Response):
            return params
        missing = [k for k in ("title", "source_branch", "target_branch") if not params.get(k)]
        if missing:
            return _error(400, error=", ".join(f"{k} is missing" for k in missing))
        source, target = str(params["source_branch"]), str(params["target_branch"])
        if source == target:
            return _error(409, message=["You can't use same project/branch for source and target"])
        for role, branch in (("Source", source), ("Target", target)):
            if not branch_exists(project.git_dir, branch):
                return _error(422, message=[f'{role} branch "{branch}" does not exist'])
        for other in project.merge_requests.values():
            if other["state"] in ("opened", "locked") and (
                other["source_branch"],
                other["target_branch"],
            ) == (source, target):
                return _error(
                    409,
                    message=[
                        "Another open merge request already exists for this source branch: "
                        f"!{other['iid']}"
                    ],
                )
        iid = next(project.mr_iids)
        labels = _labels(params.get("labels"))
        project.labels.update(labels)
        mr: dict[str, Any] = {
            "id": next(self._ids),
            "iid": iid,
            "title": str(params["title"]),
            "description": params.get("description"),
            "state": "opened",
            "source_branch": source,
            "target_branch": target,
            "labels": labels,
            "reviewer_ids": self._known_users(params.get("reviewer_ids")),
            "created_at": _now(),
            "updated_at": _now(),
        }
        project.merge_requests[iid] = mr
        return JSONResponse(self._mr(request, project, mr), 201)

    async def _put_mr(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        mr = project.merge_requests.get(int(m["iid"]))
        if mr is None:
            return _error(404, message="404 Not found")
        params = await self._params(request)
        if isinstance(params, Response):
            return params
        known = {k: v for k, v in params.items() if k in _UPDATE_PARAMS.split(", ")}
        if not known:
            return _error(
                400, error=f"{_UPDATE_PARAMS} are missing, at least one parameter must be provided"
            )
        if "title" in known and not str(known["title"]).strip():
            return _error(400, error="title is empty")
        if "target_branch" in known:
            target = str(known["target_branch"])
            if not branch_exists(project.git_dir, target):
                return _error(422, message=[f'Target branch "{target}" does not exist'])
            mr["target_branch"] = target
        if "title" in known:
            mr["title"] = str(known["title"])
        if "description" in known:
            mr["description"] = known["description"]
        if "labels" in known:
            mr["labels"] = _labels(known["labels"])
        if "reviewer_ids" in known:
            mr["reviewer_ids"] = self._known_users(known["reviewer_ids"])
        if known.get("state_event") == "close":
            mr["state"] = "closed"
        mr["updated_at"] = _now()
        return JSONResponse(self._mr(request, project, mr))

    # issues and notes

    async def _list_issues(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        q = request.query_params
        state = q.get("state", "all")
        if state not in ("opened", "closed", "all"):
            return _error(400, error="state does not have a valid value")
        milestone = q.get("milestone")
        found = [
            issue
            for issue in project.issues.values()
            if state in ("all", issue["state"])
            and _has_labels(issue, q.get("labels"))
            and (
                milestone in (None, "Any")
                or (issue["milestone"] or {}).get("title") == milestone
                or (milestone == "None" and issue["milestone"] is None)
            )
        ]
        found.sort(key=lambda i: i["iid"], reverse=q.get("sort", "desc") == "desc")
        return self._page(request, [self._issue(request, i) for i in found])

    async def _get_issue(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        issue = project.issues.get(int(m["iid"]))
        if issue is None:
            return _error(404, message="404 Not found")
        return JSONResponse(self._issue(request, issue))

    async def _notes(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        if int(m["iid"]) not in project.issues:
            return _error(404, message="404 Not found")
        notes = sorted(
            project.notes[int(m["iid"])],
            key=lambda n: n["id"],
            reverse=request.query_params.get("sort", "desc") == "desc",  # GitLab: newest first
        )
        return self._page(request, notes)

    async def _add_note(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        iid = int(m["iid"])
        if iid not in project.issues:
            return _error(404, message="404 Not found")
        params = await self._params(request)
        if isinstance(params, Response):
            return params
        if "body" not in params:
            return _error(400, error="body is missing")
        if not str(params["body"]).strip():
            return _error(400, message={"note": ["can't be blank"]})
        return JSONResponse(self.add_note(project.path, iid, str(params["body"])), 201)

    async def _put_note(self, request: Request, m: dict[str, str]) -> Response:
        project = self._project(request, m["p"])
        if project is None:
            return _error(404, message="404 Project Not Found")
        iid = int(m["iid"])
        if iid not in project.issues:
            return _error(404, message="404 Not found")
        note = next((n for n in project.notes[iid] if n["id"] == int(m["note"])), None)
        if note is None:
            return _error(404, message="404 Note Not Found")
        if note["system"]:
            return _error(403, message="403 Forbidden")
        params = await self._params(request)
        if isinstance(params, Response):
            return params
        if not str(params.get("body") or "").strip():
            return _error(400, error="body is missing")
        note["body"] = str(params["body"])
        note["updated_at"] = _now()
        return JSONResponse(note)

    # -- rendering -------------------------------------------------------------------------

    def _page(self, request: Request, items: list[Any]) -> Response:
        page = page_of(request, items, default_per_page=20, max_per_page=100)
        headers = page.headers(request, gitlab=True)
        headers.pop("Link", None)
        # The links are built on the raw path: Starlette's URL has decoded %2F, and a link
        # to group/project (unencoded) would be another route.
        raw = (request.scope.get("raw_path") or b"").decode("latin-1").split("?", 1)[0]
        base = str(request.base_url).rstrip("/")
        links = []
        rels = [("prev", page.page - 1), ("first", 1)] if page.page > 1 else []
        if page.page < page.last:
            rels += [("next", page.page + 1), ("last", page.last)]
        for rel, number in rels:
            query = {**dict(request.query_params), "page": str(number)}
            query.setdefault("per_page", str(page.per_page))
            links.append(f'<{base}{raw}?{urlencode(query)}>; rel="{rel}"')
        if links:
            headers["Link"] = ", ".join(links)
        return JSONResponse(page.items, headers=headers)

    def _known_users(self, ids: Any) -> list[int]:
        wanted = ids if isinstance(ids, list) else [ids] if ids not in (None, "") else []
        known = {u["id"] for u in self.users.values()}
        return [int(i) for i in wanted if int(i) in known]  # GitLab drops unknown ids

    def _user_basic(self, user: dict[str, Any]) -> dict[str, Any]:
        return {k: user[k] for k in ("id", "username", "name", "state", "avatar_url", "web_url")}

    def _mr(self, request: Request, project: Project, mr: dict[str, Any]) -> dict[str, Any]:
        origin = str(request.base_url).rstrip("/")
        draft = bool(_DRAFT_RE.match(mr["title"]))
        by_id = {u["id"]: u for u in self.users.values()}
        return {
            "id": mr["id"],
            "iid": mr["iid"],
            "project_id": project.id,
            "title": mr["title"],
            "description": mr["description"],
            "state": mr["state"],
            "created_at": mr["created_at"],
            "updated_at": mr["updated_at"],
            "merged_at": _now() if mr["state"] == "merged" else None,
            "closed_at": _now() if mr["state"] == "closed" else None,
            "target_branch": mr["target_branch"],
            "source_branch": mr["source_branch"],
            "source_project_id": project.id,
            "target_project_id": project.id,
            "author": self._user_basic(self.me),
            "assignees": [],
            "reviewers": [self._user_basic(by_id[i]) for i in mr["reviewer_ids"]],
            "labels": list(mr["labels"]),
            "draft": draft,
            "work_in_progress": draft,
            "milestone": None,
            "merge_when_pipeline_succeeds": False,
            "merge_status": "can_be_merged",
            "detailed_merge_status": "draft_status" if draft else "mergeable",
            "sha": self._sha(project.git_dir, mr["source_branch"]),
            "user_notes_count": 0,
            "references": {"short": f"!{mr['iid']}", "full": f"{project.path}!{mr['iid']}"},
            "web_url": f"{origin}/{project.path}/-/merge_requests/{mr['iid']}",
        }

    def _issue(self, request: Request, issue: dict[str, Any]) -> dict[str, Any]:
        origin = str(request.base_url).rstrip("/")
        shown = {k: v for k, v in issue.items() if not k.startswith("_")}
        shown["web_url"] = f"{origin}/{issue['_path']}"
        return shown


def _error(status: int, **body: object) -> JSONResponse:
    return JSONResponse(body, status)


def _labels(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _has_labels(item: dict[str, Any], wanted: str | None) -> bool:
    """GitLab's ``labels=a,b``: every one of them (``None``/``Any``: no/some label)."""
    if wanted is None or wanted == "":
        return True
    if wanted == "None":
        return not item["labels"]
    if wanted == "Any":
        return bool(item["labels"])
    return all(label in item["labels"] for label in _labels(wanted))
