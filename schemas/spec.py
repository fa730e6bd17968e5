"""The phase spec (contract): what a user writes in a phase file.

Field names follow DESIGN.md §3. ``defaults`` are deep-merged into every workstream before
validation, so a workstream only states what differs.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from schemas.base import Identifier, Model, Sha256
from schemas.forge import ForgeSpec
from schemas.notify import NotifySpec
from schemas.sandbox import SandboxSpec

GateKind = Literal["lint", "unit", "integration", "security", "custom"]
ReviewMode = Literal["never", "on_failure", "always"]
Scheduling = Literal["waves", "eager"]
OnFailure = Literal["continue", "rollback"]

#: Tools with an adapter in activities/lib/adapters. The router and AI adapters add more.
KNOWN_TOOLS: tuple[str, ...] = ("shell", "patch", "aider", "claude", "codex", "auto")
AI_TOOLS: tuple[str, ...] = ("aider", "claude", "codex")
#: Validation context for a phase uet wrote itself, its templates and defaults already applied
#: (a large phase's compact document, activities/lib/parts.py): applying them again would
#: fill in what the compact form left out because it equals the field's own default.
EXPANDED = {"expanded": True}

#: `tool_id: auto` without a matching router rule.
DEFAULT_CHAIN: tuple[str, ...] = ("claude", "codex", "aider")

Command = str | list[str]


class ExecutionRequest(Model):
    """How a workstream makes its change."""

    tool_id: str = Field(default="shell", description="shell | patch | aider | claude | codex")
    command: Command | None = Field(
        default=None, description="shell: a string runs under /bin/sh -c, a list is argv"
    )
    prompt: str | None = Field(default=None, description="AI tools: the task")
    patch_file: str | None = Field(
        default=None, description="patch: a unified diff, relative to the spec file"
    )
    model: str | None = Field(default=None, description="AI tools: the model to use")
    max_turns: int | None = Field(default=None, ge=1, description="claude: --max-turns")
    args: list[str] = Field(default_factory=list, description="extra tool-specific arguments")
    env: dict[str, str] = Field(default_factory=dict, description="extra environment variables")


class FileScope(Model):
    allowed_paths: list[str] = Field(
        default_factory=list, description="globs (with **) the change may touch; empty = whole repo"
    )
    forbidden_paths: list[str] = Field(default_factory=list)


class Constraints(Model):
    file_scope: FileScope = Field(default_factory=FileScope)


class GateExpect(Model):
    """What a gate must show beyond exiting 0: ground truth, so that a gate that "passes"
    without doing its work does not count."""

    exit_code: int = Field(default=0, description="the exit code that passes")
    stdout_contains: str | None = Field(default=None, description="text the output must contain")
    stdout_matches: str | None = Field(
        default=None, description="a regular expression the output must match (re.search)"
    )
    file_exists: str | None = Field(default=None, description="a path in the checkout, after it")
    file_absent: str | None = Field(default=None, description="a path that must not exist after")


class GateSpec(Model):
    """An acceptance gate: a command that must exit 0 (or what ``expect`` says)."""

    gate_id: Identifier
    kind: GateKind = "custom"
    command: Command
    after: list[str] = Field(default_factory=list, description="gate ids that must pass first")
    timeout_s: float = Field(default=600, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    sandbox: SandboxSpec | None = Field(
        default=None, description="this gate's own (default: the workspace's sandbox)"
    )
    retry_flaky: bool | None = Field(
        default=None,
        description="re-run once on failure when telemetry knows this gate as flaky "
        "(default: defaults.retry_flaky)",
    )
    expect: GateExpect | None = Field(
        default=None, description="ground truth beyond the exit code (output, files)"
    )


class AcceptanceCriteria(Model):
    gates: list[GateSpec] = Field(default_factory=list)


class ResiliencePolicy(Model):
    max_attempts: int = Field(default=3, ge=1, description="activity attempts on transient errors")
    max_fix_attempts: int = Field(default=2, ge=0)
    timeout_s: float = Field(default=1800, gt=0, description="tool run time limit")


#: Paths no patch may touch unless a phase says otherwise (``.git`` is never allowed).
DEFAULT_PROTECTED_PATHS: tuple[str, ...] = (".gitmodules", ".gitattributes", ".github/workflows/**")


class SecretAllow(Model):
    """A line the secret scan flags that is no secret (a test fixture, a documented example),
    named by file and line hash: the same text elsewhere, or a changed line, is scanned again."""

    path: str = Field(min_length=1, description="the file, as the patch names it")
    line_sha256: Sha256 = Field(
        description="sha256 (hex) of the added line's text, as the secret_in_patch report prints it"
    )


class PatchPolicy(Model):
    """Limits checked on the diff itself, before git sees it."""

    max_files_changed: int = Field(default=50, ge=1)
    max_lines_changed: int = Field(default=2000, ge=1, description="insertions + deletions")
    max_hunks: int = Field(default=500, ge=1)
    max_patch_bytes: int = Field(default=1 << 20, ge=1)
    allow_deletions: bool = True
    allow_binary: bool = False
    oscillation: Literal["refuse", "review", "allow"] = Field(
        default="refuse",
        description="a patch that undoes one integrated earlier in the run (or repeats an "
        "earlier attempt): refuse it, ask a person, or allow it (a phase that means to revert)",
    )
    protected_paths: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROTECTED_PATHS),
        description="globs no patch may touch (replaces the default list when set)",
    )
    secret_allowlist: list[SecretAllow] = Field(
        default_factory=list,
        description="added lines the secret scan may let through (secret_in_patch false "
        "positives), by file and line hash",
    )


class RouteRule(Model):
    """Workstreams whose file scope touches ``paths`` (or whose ``task_kind`` is ``kind``)
    use ``tools``, the first one that works."""

    paths: list[str] = Field(default_factory=list, description="globs; any overlap matches")
    kind: str | None = Field(default=None, description="matches the workstream's task_kind")
    tools: list[str] = Field(min_length=1)


class CircuitBreaker(Model):
    failure_threshold: int = Field(default=3, ge=1, description="consecutive failures to open")
    cooldown_s: float = Field(default=600, ge=0, description="how long an open tool is skipped")


class Router(Model):
    rules: list[RouteRule] = Field(default_factory=list)
    default: list[str] = Field(default_factory=lambda: list(DEFAULT_CHAIN))
    circuit_breaker: CircuitBreaker = Field(default_factory=CircuitBreaker)
    learned: bool = Field(
        default=False,
        description="order each auto chain by the tools' learned success rate and cost for "
        "the workstream's task kind (read once, when the run is planned)",
    )


LearningMode = Literal["aggressive", "review", "off"]


class Learning(Model):
    """How recovery patterns learned from earlier runs are treated."""

    mode: LearningMode = Field(
        default="aggressive",
        description="aggressive: a pattern at or above the threshold becomes active by itself; "
        "review: every pattern waits for `uet patterns approve`; off: nothing is learned or "
        "applied",
    )
    threshold: float = Field(default=0.75, ge=0, le=1, description="confidence to auto-activate")
    min_resolutions: int = Field(
        default=3, ge=1, description="successful fixes of a signature before a pattern is proposed"
    )


class RecoveryMatch(Model):
    category: str | None = Field(default=None, description="an error category, e.g. lint")
    signature: str | None = Field(default=None, description="an error signature")

    @model_validator(mode="after")
    def _one(self) -> RecoveryMatch:
        if (self.category is None) == (self.signature is None):
            raise ValueError("give exactly one of category or signature")
        return self


class RecoveryRule(Model):
    """A deterministic fixer run before an AI fix attempt is spent, when a gate fails with a
    matching error (e.g. ``ruff check --fix .`` for ``lint``)."""

    match: RecoveryMatch
    command: Command
    timeout_s: float = Field(default=120, gt=0)


class Budget(Model):
    """Spending limits over the tools' reported (or table-priced) costs."""

    max_cost_usd_total: float | None = Field(default=None, gt=0)
    max_cost_usd_per_workstream: float | None = Field(default=None, gt=0)
    warn_at: float = Field(default=0.8, gt=0, le=1, description="fraction of a limit")


class Compensation(Model):
    command: Command


class CacheEntry(Model):
    """A directory setup makes (``.venv``, ``node_modules``), kept and reused by every checkout
    whose key files have the same content."""

    path: str = Field(description="a directory relative to the checkout root")
    key: list[str] = Field(
        min_length=1, description="files (globs) whose content, with the setup, keys the cache"
    )


class WorkspaceSpec(Model):
    """What a checkout needs besides its tracked files, for the tool and the gates alike."""

    setup: list[Command] = Field(
        default_factory=list, description="commands run in each new checkout, in order"
    )
    setup_timeout_s: float = Field(default=900, gt=0, description="for all setup commands")
    cache: list[CacheEntry] = Field(default_factory=list)
    include: list[str] = Field(
        default_factory=list,
        description="untracked files (globs) copied from the repository's work tree",
    )
    env: dict[str, str] = Field(default_factory=dict, description="for setup, tool and gates")
    env_passthrough: list[str] = Field(
        default_factory=list,
        description="variables of the worker's environment the steps may see (names, or "
        "PREFIX_*); the rest is withheld but a safe base, uet's own and the AI tool's key",
    )
    ports: int = Field(
        default=0, ge=0, le=16, description="free ports as UET_PORT_0…, unique among running ones"
    )
    sandbox: SandboxSpec = Field(
        default_factory=SandboxSpec,
        description="what the tool, setup, fixers, gates and compensation may see and use",
    )

    @field_validator("env_passthrough")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\*?", name):
                raise ValueError(f"{name!r} is not a variable name (or a PREFIX_* pattern)")
        return value


class Defaults(Model):
    """Merged into every workstream (the workstream's own values win)."""

    execution_request: dict[str, Any] = Field(default_factory=dict)
    constraints: dict[str, Any] = Field(default_factory=dict)
    acceptance_criteria: dict[str, Any] = Field(
        default_factory=dict,
        description="gates every workstream gets (a workstream's gates are added after these; "
        "one with the same gate_id replaces the default's)",
    )
    workspace: dict[str, Any] = Field(
        default_factory=dict,
        description="every workstream's workspace (deep-merged under its own), and the phase "
        "gates'",
    )
    resilience_policy: dict[str, Any] = Field(default_factory=dict)
    patch_policy: dict[str, Any] = Field(default_factory=dict)
    review: ReviewMode | None = None
    retry_flaky: bool = Field(
        default=False, description="every gate that does not say: re-run once if known flaky"
    )

    @field_validator("workspace")
    @classmethod
    def _workspace_valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        # Checked as written: every workstream may override all of it, the phase gates not.
        WorkspaceSpec.model_validate(value)
        return value

    def phase_workspace(self) -> WorkspaceSpec:
        """The workspace of the steps outside any workstream: the phase gates."""
        return WorkspaceSpec.model_validate(self.workspace)


#: What a template variable may be given as.
TemplateValue = str | int | float | bool
#: ``{{ name }}`` in a template's strings.
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: What a template may not say: each workstream says these itself.
NOT_IN_TEMPLATES = ("workstream_id", "dependencies", "template", "with")


class TemplateSpec(Model):
    """A workstream's shape, reused: a workstream that says ``template: NAME`` and
    ``with: {var: value}`` gets everything here, ``{{ var }}`` filled in, under what it says
    itself (its own values win; the phase's ``defaults`` go under both)."""

    description: str = ""
    variables: dict[str, TemplateValue | None] = Field(
        default_factory=dict, description="name → default value (null: the workstream must give it)"
    )
    workstream: dict[str, Any] = Field(
        description="any workstream field but workstream_id, dependencies, template and with"
    )


class WorkstreamSpec(Model):
    workstream_id: Identifier
    title: str = ""
    dependencies: list[str] = Field(default_factory=list)
    execution_request: ExecutionRequest = Field(default_factory=ExecutionRequest)
    constraints: Constraints = Field(default_factory=Constraints)
    acceptance_criteria: AcceptanceCriteria = Field(default_factory=AcceptanceCriteria)
    resilience_policy: ResiliencePolicy = Field(default_factory=ResiliencePolicy)
    patch_policy: PatchPolicy = Field(default_factory=PatchPolicy)
    review: ReviewMode = "on_failure"
    compensation: Compensation | None = None
    estimated_duration_s: float | None = Field(
        default=None, gt=0, description="planning weight for the critical path"
    )
    task_kind: str | None = Field(default=None, description="for the router, e.g. docs, refactor")
    issue: int | None = Field(
        default=None,
        ge=1,
        description="the forge issue it came from (`uet plan --from-issues`): after the run it "
        "gets one comment with the outcome",
    )
    workspace: WorkspaceSpec = Field(default_factory=WorkspaceSpec)
    allow_no_change: bool = Field(
        default=False,
        description="an AI tool that changes nothing completes the workstream (else: no_change "
        "fails it)",
    )
    template: str | None = Field(default=None, description="the phase template this one uses")
    with_: dict[str, TemplateValue] = Field(
        default_factory=dict, alias="with", description="the template's variables"
    )
    recoveries: list[RecoveryRule] = Field(
        default_factory=list,
        description="fixers for this workstream's gate failures (tried before the phase's)",
    )


#: The most workstreams a phase starts ahead of their slots (PhaseSpec.prepare_ahead).
MAX_AHEAD = 6


class PhaseSpec(Model):
    phase_id: Identifier
    title: str = ""
    base_ref: str | None = Field(default=None, description="default: the repository's HEAD")
    max_parallel: int = Field(default=4, ge=1, le=500)
    prepare_ahead: int | None = Field(
        default=None,
        ge=0,
        # Each one waits in an update of the phase's; the server lets 10 be in flight at once,
        # and people's reviews and rollbacks need room too.
        le=MAX_AHEAD,
        description="workstreams started beyond max_parallel while every slot is busy: each "
        "makes its checkout ready (setup included) and starts its tool the moment a slot "
        "frees. No more than max_parallel workstreams run their tools and gates at once. "
        f"Default: max_parallel, at most {MAX_AHEAD}; 0: none",
    )
    scheduling: Scheduling = "waves"
    on_failure: OnFailure = Field(
        default="continue",
        description="continue: independent workstreams go on; rollback: undo the whole phase",
    )
    allowed_reviewers: list[str] = Field(
        default_factory=list, description="who may decide reviews (empty: anyone)"
    )
    review_timeout_s: float | None = Field(
        default=None, gt=0, description="how long a review may wait (default: forever)"
    )
    on_review_timeout: Literal["reject", "approve"] = "reject"
    router: Router = Field(default_factory=Router, description="for workstreams with tool_id auto")
    budget: Budget = Field(default_factory=Budget)
    forge: ForgeSpec | None = Field(
        default=None,
        description="where the run's result becomes a pull request (`uet pr RUN`): GitHub, "
        "GitLab or Gitea",
    )
    notify: NotifySpec = Field(
        default_factory=NotifySpec,
        description="webhooks told when a review is requested, the budget warning fires and "
        "the run ends",
    )
    defaults: Defaults = Field(default_factory=Defaults)
    templates: dict[Identifier, TemplateSpec] = Field(
        default_factory=dict, description="workstream shapes that workstreams reuse (template:)"
    )
    gates: list[GateSpec] = Field(
        default_factory=list,
        description="phase gates, run on the integration branch after each wave",
    )
    learning: Learning = Field(default_factory=Learning)
    recoveries: list[RecoveryRule] = Field(
        default_factory=list, description="fixers for every workstream's gate failures"
    )
    workstreams: list[WorkstreamSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _gate_defaults(self) -> PhaseSpec:
        for ws in self.workstreams:
            for gate in ws.acceptance_criteria.gates:
                if gate.retry_flaky is None:
                    gate.retry_flaky = self.defaults.retry_flaky
        return self

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or (info.context or {}).get("expanded"):
            return data
        defaults = data.get("defaults") or {}
        templates = data.get("templates") or {}
        streams = data.get("workstreams")
        if not isinstance(defaults, dict) or not isinstance(streams, list):
            return data
        if isinstance(templates, dict):
            streams = [
                expand_template(templates, ws) if isinstance(ws, dict) else ws for ws in streams
            ]
        merged = [merge_defaults(defaults, ws) if isinstance(ws, dict) else ws for ws in streams]
        return {**data, "workstreams": merged}

    @property
    def ahead_places(self) -> int:
        """How many workstreams may be started ahead of their slots (prepare_ahead's value)."""
        if self.prepare_ahead is not None:
            return self.prepare_ahead
        return min(self.max_parallel, MAX_AHEAD)

    def workstream(self, workstream_id: str) -> WorkstreamSpec:
        for ws in self.workstreams:
            if ws.workstream_id == workstream_id:
                return ws
        raise KeyError(workstream_id)


def expand_template(templates: dict[str, Any], workstream: dict[str, Any]) -> dict[str, Any]:
    """The workstream with its template filled in underneath it (unknown templates and
    variables are left for the spec check to report)."""
    template = templates.get(workstream.get("template") or "")
    if not isinstance(template, dict) or not isinstance(template.get("workstream"), dict):
        return workstream
    values = {k: v for k, v in (template.get("variables") or {}).items() if v is not None}
    given = workstream.get("with") or {}
    if isinstance(given, dict):
        values.update(given)
    body = fill(template["workstream"], values)
    own = {k: v for k, v in workstream.items()}
    return _deep_merge(body, own) if isinstance(body, dict) else workstream


def fill(value: Any, values: dict[str, Any]) -> Any:
    """``{{ name }}`` replaced by its value: a string that is only the placeholder takes the
    value as it is (a number stays a number); inside text it becomes text."""
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole and whole.group(1) in values:
        return values[whole.group(1)]
    return PLACEHOLDER.sub(
        lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), value
    )


def placeholders(value: Any) -> set[str]:
    """The variables a template's body uses."""
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set(PLACEHOLDER.findall(value)) if isinstance(value, str) else set()


def merge_defaults(defaults: dict[str, Any], workstream: dict[str, Any]) -> dict[str, Any]:
    """The workstream as written, with the phase defaults filled in underneath it."""
    merged = dict(workstream)
    for key, value in defaults.items():
        if key not in Defaults.model_fields or key == "retry_flaky" or value is None:
            continue
        if key not in merged:
            merged[key] = value
        elif key == "acceptance_criteria" and isinstance(value, dict):
            merged[key] = _merge_gates(value, merged[key])
        elif isinstance(value, dict) and isinstance(merged[key], dict):
            merged[key] = _deep_merge(value, merged[key])
    return merged


def _merge_gates(defaults: dict[str, Any], own: Any) -> Any:
    """The defaults' gates, then the workstream's; one with a default's gate_id replaces it
    in place (so a workstream can change the shared gate's command or timeout)."""
    if not isinstance(own, dict):
        return own
    merged = _deep_merge({k: v for k, v in defaults.items() if k != "gates"}, own)
    shared, mine = defaults.get("gates"), own.get("gates")
    if not isinstance(shared, list) or not isinstance(mine, list):
        if isinstance(shared, list) and "gates" not in own:
            merged["gates"] = shared
        return merged
    ids = {g.get("gate_id") for g in mine if isinstance(g, dict)}
    by_id = {g.get("gate_id"): g for g in mine if isinstance(g, dict)}
    gates = [
        by_id[g.get("gate_id")] if isinstance(g, dict) and g.get("gate_id") in ids else g
        for g in shared
    ]
    placed = {g.get("gate_id") for g in gates if isinstance(g, dict)}
    merged["gates"] = gates + [
        g for g in mine if not isinstance(g, dict) or g.get("gate_id") not in placed
    ]
    return merged


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
