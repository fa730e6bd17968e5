"""From issues to a pull request, on each forge: open issues with a "blocked by" link become a
phase (`uet plan --from-issues`); its run, as it completes, pushes uet's branch to a real
token-checking git remote on loopback and opens one pull request whose body is the report;
each issue gets one comment; `uet pr` updates the same pull request; a re-run of the phase
updates each issue's comment rather than adding another. The same test for GitHub, GitLab
and Gitea (the fakes of tests/fakes/forges)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakes.forges.gitea import FakeGitea
from fakes.forges.github import FakeGitHub
from fakes.forges.gitlab import FakeGitLab
from helpers import cli, git_out, run_input, run_phase
from temporalio.client import Client
from temporalio.worker import Worker

from runtime.settings import Settings
from runtime.specfile import load_spec
from schemas.run import PhaseState

TOKEN = "tok-E2E-0123456789abcdefghijklmnop"
REPOSITORY = "acme/project"
TOKEN_ENV = "UET_TEST_E2E_FORGE_TOKEN"


@dataclass
class Forge:
    """One fake forge, seen the same way whatever its kind."""

    kind: str
    fake: Any
    url: str

    def add_repo(self, git_dir: Path) -> None:
        self.fake.add_token(TOKEN)
        if self.kind == "gitlab":
            self.fake.add_project(REPOSITORY, git_dir=git_dir)
        else:
            self.fake.add_repo(REPOSITORY, git_dir=git_dir)

    def add_issue(self, title: str, body: str, labels: list[str]) -> int:
        if self.kind == "github":
            return int(self.fake.add_issue(REPOSITORY, title, body, labels=labels))
        if self.kind == "gitlab":
            return int(self.fake.add_issue(REPOSITORY, title, body, labels=labels)["iid"])
        return int(self.fake.add_issue(REPOSITORY, title, body, labels=labels)["number"])

    def pull_requests(self) -> list[dict[str, str]]:
        """number, head, base and body of each pull (merge) request."""
        if self.kind == "gitlab":
            mrs = self.fake.projects[REPOSITORY].merge_requests.values()
            return [
                {
                    "number": mr["iid"],
                    "head": mr["source_branch"],
                    "base": mr["target_branch"],
                    "body": mr["description"] or "",
                }
                for mr in mrs
            ]
        issues = self.fake.repo(REPOSITORY).issues if self.kind == "github" else (
            self.fake.repos[REPOSITORY].issues
        )  # fmt: skip
        found = []
        for number, issue in issues.items():
            pull = issue.get("pull")
            if pull:
                head, base = pull["head"], pull["base"]
                found.append({"number": number, "head": head, "base": base, "body": issue["body"]})
        return found

    def comments(self, number: int) -> list[str]:
        if self.kind == "github":
            return [
                c["body"]
                for c in self.fake.comments.values()
                if c["_issue"] == number and c["_repo"].full_name == REPOSITORY
            ]
        if self.kind == "gitlab":
            notes = self.fake.projects[REPOSITORY].notes.get(number, [])
            return [n["body"] for n in notes if not n.get("system")]
        return [c["body"] for c in self.fake.repos[REPOSITORY].comments.get(number, [])]


@contextlib.contextmanager
def running(kind: str, root: Path) -> Iterator[Forge]:
    if kind == "github":
        with FakeGitHub() as github:
            yield Forge(kind, github, github.url)
    elif kind == "gitlab":
        gitlab = FakeGitLab(root)
        with gitlab.serve() as url:
            yield Forge(kind, gitlab, url)
    else:
        gitea = FakeGitea(root)
        with gitea.serve() as url:
            yield Forge(kind, gitea, url)


@pytest.mark.parametrize("kind", ["github", "gitlab", "gitea"])
async def test_issues_to_a_pull_request_and_comments(
    kind: str,
    client: Client,
    settings: Settings,
    worker: Worker,
    fake_tools: Path,
    make_repo: Any,
    git_http: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo: Path = make_repo({"README.md": "hi\n"})
    remote = git_http.serve(repo, "project")
    git_http.tokens.add(TOKEN)
    served = git_http.root / "project.git"
    # The user's own remote: what forge.remote (origin) names.
    git_out(repo, "remote", "add", "origin", remote)
    before = git_out(repo, "rev-parse", "HEAD")
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # the worker's environment (it runs in this process)
    uet = cli(client, settings)
    with running(kind, tmp_path / "forge") as forge:
        forge.add_repo(served)
        first = forge.add_issue("One", "WRITE one.txt: one", ["uet", "tool:claude"])
        second = forge.add_issue(
            "Two", f"Blocked by #{first}.\n\nWRITE two.txt: two", ["uet", "tool:claude"]
        )
        forge.add_issue("Not this", "a question", ["question"])
        phase_file = tmp_path / "phase.yaml"
        planned = await uet(
            "plan", "--from-issues", REPOSITORY, "--label", "uet", "--forge", kind,
            "--api-url", forge.url, "--token-env", TOKEN_ENV, "-o", str(phase_file),
        )  # fmt: skip
        assert planned.returncode == 0, planned.stderr
        spec = load_spec(str(phase_file)).spec
        ws = {w.workstream_id: w for w in spec.workstreams}
        assert set(ws) == {f"issue-{first}", f"issue-{second}"}
        assert ws[f"issue-{second}"].dependencies == [f"issue-{first}"]
        assert ws[f"issue-{first}"].issue == first
        assert spec.forge is not None and spec.forge.kind == kind
        spec = spec.model_copy(update={"base_ref": "main"})

        # The run publishes itself as it completes.
        record = await run_phase(client, settings, run_input(spec, repo))
        assert record.status == PhaseState.COMPLETED, record.reason
        assert record.publish_error is None
        (pr,) = record.pull_requests
        assert pr.created and pr.base == "main" and pr.head == record.integration_branch
        assert git_out(served, "rev-parse", f"refs/heads/{pr.head}") == record.head_sha
        (opened,) = forge.pull_requests()
        assert opened["number"] == pr.number and opened["head"] == pr.head
        body = opened["body"]
        assert f"uet run `{record.run_id}`" in body and "```mermaid" in body
        assert f"Closes #{first}, Closes #{second}" in body
        for number in (first, second):
            (comment,) = forge.comments(number)
            assert f"#{pr.number}" in comment and "completed" in comment
            assert record.run_id in comment

        # `uet status` names it; `uet pr` updates the same pull request.
        status = await uet("status", record.run_id)
        assert status.returncode == 0, status.stderr
        assert f"pull request #{pr.number}" in status.stdout
        again = await uet("pr", record.run_id, "--json")
        assert again.returncode == 0, again.stderr
        (updated,) = json.loads(again.stdout)
        assert updated["number"] == pr.number and updated["created"] is False
        assert len(forge.pull_requests()) == 1
        assert [len(forge.comments(n)) for n in (first, second)] == [1, 1]

        # A re-run of the phase: its own pull request, the same one comment per issue.
        rerun = await run_phase(client, settings, run_input(spec, repo))
        assert rerun.status == PhaseState.COMPLETED, rerun.reason
        (pr2,) = rerun.pull_requests
        assert pr2.number != pr.number
        for number in (first, second):
            (comment,) = forge.comments(number)
            assert rerun.run_id in comment and f"#{pr2.number}" in comment

        logs = planned.stderr + status.stdout + status.stderr + again.stdout + again.stderr
        assert TOKEN not in logs
    # The user's repository: their branch and work tree untouched.
    assert git_out(repo, "rev-parse", "HEAD") == before
    assert git_out(repo, "status", "--porcelain") == ""


async def test_the_demo_phase_opens_one_pull_request_with_its_report(
    client: Client,
    settings: Settings,
    worker: Worker,
    git_http: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`uet run` of the demo phase (examples/demo, with forge: added) on the fake GitHub: the
    branch on the real loopback remote, one pull request with the report; `uet pr` then
    updates that one."""
    import shutil

    import yaml
    from helpers import make_demo_repo

    demo = Path(__file__).resolve().parent.parent / "examples" / "demo"
    copy = tmp_path / "demo-phase"
    shutil.copytree(demo, copy, ignore=shutil.ignore_patterns("__pycache__"))
    repo = make_demo_repo(tmp_path / "demo")
    remote = git_http.serve(repo, "demo")
    git_http.tokens.add(TOKEN)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    uet = cli(client, settings)
    with FakeGitHub() as github:
        github.add_token(TOKEN)
        github.add_repo("acme/demo", git_dir=git_http.root / "demo.git")
        phase = yaml.safe_load((copy / "phase.yaml").read_text())
        phase["forge"] = {
            "kind": "github",
            "remote": remote,
            "repository": "acme/demo",
            "api_url": github.url,
            "token_env": TOKEN_ENV,
            "pr": {"labels": ["uet"], "draft": True},
        }
        (copy / "phase.yaml").write_text(yaml.safe_dump(phase, sort_keys=False))
        ran = await uet(
            "run", str(copy / "phase.yaml"), "--repo", str(repo), "--no-worker", "--json"
        )
        assert ran.returncode == 0, ran.stderr
        record = json.loads(ran.stdout)
        assert record["status"] == "completed"
        (pr,) = record["pull_requests"]
        branch = record["integration_branch"]
        assert git_http.refs("demo")[f"refs/heads/{branch}"] == record["head_sha"]
        (number, opened), *others = github.repo("acme/demo").issues.items()
        assert not others and number == pr["number"] and opened["pull"]["head"] == branch
        assert opened["pull"]["base"] == "main" and opened["pull"]["draft"] is True
        assert [label["name"] for label in opened["labels"]] == ["uet"]
        body = opened["body"]
        for ws in record["workstreams"]:
            assert f"| {ws.replace('_', chr(92) + '_')} |" in body  # every workstream's row
        assert "```mermaid" in body and f"<!-- uet:run={record['run_id']} -->" in body
        again = await uet("pr", record["run_id"])
        assert again.returncode == 0, again.stderr
        assert f"updated #{pr['number']}" in again.stdout
        assert len(github.repo("acme/demo").issues) == 1
        assert TOKEN not in ran.stdout + ran.stderr + again.stdout + again.stderr


async def test_a_failed_run_opens_nothing_and_tells_its_issues(
    client: Client,
    settings: Settings,
    worker: Worker,
    make_repo: Any,
    git_http: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from helpers import phase

    repo: Path = make_repo({"README.md": "hi\n"})
    remote = git_http.serve(repo, "project")
    git_http.tokens.add(TOKEN)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    with running("github", Path(git_http.root) / "forge") as forge:
        forge.add_repo(git_http.root / "project.git")
        good = forge.add_issue("Good", "", [])
        bad = forge.add_issue("Bad", "", [])
        spec = phase(
            base_ref="main",
            forge={
                "kind": "github", "remote": remote, "repository": REPOSITORY,
                "api_url": forge.url, "token_env": TOKEN_ENV,
            },
            workstreams=[
                {"workstream_id": "good", "issue": good,
                 "execution_request": {"command": "echo g > g.txt"}},
                {"workstream_id": "bad", "issue": bad,
                 "execution_request": {"command": "exit 3"}},
            ],
        )  # fmt: skip
        record = await run_phase(client, settings, run_input(spec, repo))
        assert record.status == PhaseState.FAILED
        assert record.pull_requests == [] and forge.pull_requests() == []
        assert git_http.refs("project").get(f"refs/heads/{record.integration_branch}") is None
        (said_bad,) = forge.comments(bad)
        assert "failed" in said_bad and "No pull request: the run ended failed." in said_bad
        (said_good,) = forge.comments(good)
        assert "completed" in said_good and "No pull request" in said_good
