"""Publishing a run: its integration branch pushed to the forge's remote under its own uet
name, and one pull request opened for it — or updated, when one is open already, so a retry
or a second ``uet pr`` never opens another.

With ``pr.per_workstream`` each workstream's branch gets its own pull request instead,
stacked in dependency order: each targets its (first) dependency's branch, the roots the
base, and every body lists the others.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import networkx as nx

from activities.lib.forges.base import Forge, PullRequest
from activities.lib.forges.push import push_branches
from activities.lib.forges.report import run_markdown
from activities.lib.git import Git
from schemas.forge import ForgeSpec, PullRequestRef
from schemas.ledger import LedgerEntry
from schemas.refs import workstream_branch
from schemas.run import RunRecord, WorkstreamState


async def publish(
    forge: Forge,
    spec: ForgeSpec,
    repo: Git,
    remote_url: str,
    token: str | None,
    record: RunRecord,
    ledger: Sequence[LedgerEntry],
    dependencies: Mapping[str, list[str]],
    base: str,
    *,
    title: str,
    dashboard: str | None = None,
    issues: Mapping[str, int] | None = None,
) -> list[PullRequestRef]:
    """Push and open or update; the pull requests as they now are."""
    if record.head_sha is None:
        raise ValueError(f"run {record.run_id} has no integration head to publish")
    if not spec.pr.per_workstream:
        body = run_markdown(record, ledger, dependencies, dashboard=dashboard, issues=issues)
        await push_branches(
            repo,
            remote_url,
            [(record.head_sha, record.integration_branch)],
            token=token,
            kind=spec.kind,
            token_env=spec.token_variable(),
        )
        return [await _open_or_update(forge, spec, record.integration_branch, base, title, body)]
    # Each of a stack closes its own workstream's issue only.
    body = run_markdown(record, ledger, dependencies, dashboard=dashboard, issues=issues, closes=())
    return await _stacked(
        forge, spec, repo, remote_url, token, record, dependencies, base, title, body, issues or {}
    )


async def _open_or_update(
    forge: Forge,
    spec: ForgeSpec,
    head: str,
    base: str,
    title: str,
    body: str,
    workstream_id: str | None = None,
) -> PullRequestRef:
    found = await forge.find_pull_request(head, base)
    if found is not None:
        pr = await forge.update_pull_request(found.number, title=title, body=body, base=base)
        return _ref(pr, workstream_id, created=False)
    pr = await forge.open_pull_request(
        head,
        base,
        title,
        body,
        draft=spec.pr.draft,
        labels=spec.pr.labels or None,
        reviewers=spec.pr.reviewers or None,
    )
    return _ref(pr, workstream_id, created=True)


async def _stacked(
    forge: Forge,
    spec: ForgeSpec,
    repo: Git,
    remote_url: str,
    token: str | None,
    record: RunRecord,
    dependencies: Mapping[str, list[str]],
    base: str,
    title: str,
    body: str,
    issues: Mapping[str, int],
) -> list[PullRequestRef]:
    """One pull request per integrated workstream, each on its first dependency's branch."""
    done = [
        ws
        for ws, state in record.workstreams.items()
        if state.status == WorkstreamState.COMPLETED and state.commit
    ]
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_nodes_from(done)
    graph.add_edges_from((d, ws) for ws in done for d in dependencies.get(ws, []) if d in done)
    order = list(nx.lexicographical_topological_sort(graph))
    branches = {ws: workstream_branch(record.run_id, ws) for ws in order}
    await push_branches(
        repo,
        remote_url,
        [(str(record.workstreams[ws].commit), branches[ws]) for ws in order],
        token=token,
        kind=spec.kind,
        token_env=spec.token_variable(),
    )
    bodies = {ws: body + (f"\nCloses #{issues[ws]}\n" if ws in issues else "") for ws in order}
    refs: list[PullRequestRef] = []
    for ws in order:
        deps = [d for d in dependencies.get(ws, []) if d in branches]
        target = branches[deps[0]] if deps else base
        refs.append(
            await _open_or_update(
                forge, spec, branches[ws], target, f"{title}: {ws}", bodies[ws], ws
            )
        )
    # Every body lists the others, now that they all have numbers.
    listing = "\n".join(f"- {r.workstream_id}: #{r.number} → `{r.base}`" for r in refs)
    for ref in refs:
        stacked = f"{bodies[str(ref.workstream_id)]}\n### The stack\n\n{listing}\n"
        await forge.update_pull_request(ref.number, body=stacked)
    return refs


def _ref(pr: PullRequest, workstream_id: str | None, *, created: bool) -> PullRequestRef:
    return PullRequestRef(
        number=pr.number,
        url=pr.url,
        head=pr.head,
        base=pr.base,
        workstream_id=workstream_id,
        created=created,
    )
