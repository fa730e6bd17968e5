"""Applying unified-diff patches with git, the one way uet does it.

``git apply`` is all-or-nothing (a patch that does not apply changes nothing), so no separate
``--check`` pass; never ``--reject``, ``--unsafe-paths`` or ``--whitespace=fix`` (it would
rewrite the tool's lines).
"""

from __future__ import annotations

import asyncio
import json

from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.patch_parse import ParsedPatch, parse_patch
from activities.lib.patch_policy import History, validate
from activities.lib.remote_repo import local_path
from activities.lib.state_dir import StateDir
from schemas.base import ArtifactRef
from schemas.patch import (
    PatchArtifact,
    QuarantineInput,
    QuarantineResult,
    ValidatePatchInput,
    ValidatePatchResult,
    ValidationReport,
)


class PatchActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def validate_patch(self, input: ValidatePatchInput) -> ValidatePatchResult:
        """Read the patch exactly, then judge it: format, scope, constraints, oscillation.
        In a thread: a large patch takes seconds to parse, and on the event loop it would
        stop this activity's heartbeats (and every other activity of the worker) meanwhile."""
        parsed, report = await asyncio.to_thread(self._judge, input)
        artifact = PatchArtifact(
            patch_id=input.patch_id,
            sha256=input.patch.sha256,
            size=input.patch.size,
            uri=input.patch.uri,
            base_sha=input.base_sha,
            tool_id=input.tool_id,
            workstream_id=input.workstream_id,
            attempt=input.attempt,
            stats=parsed.stats,
            fingerprint=parsed.fingerprint,
            reverse_fingerprint=parsed.reverse_fingerprint,
        )
        return ValidatePatchResult(artifact=artifact, report=report)

    def _judge(self, input: ValidatePatchInput) -> tuple[ParsedPatch, ValidationReport]:
        data = self.state.artifacts.read_bytes(input.patch)
        parsed = parse_patch(data)
        history = History(
            earlier_attempts=input.earlier_attempts,
            integrated=self._integrated(input.run_history),
        )
        report = validate(
            parsed,
            len(data),
            input.scope,
            input.policy,
            history,
            extra_protected=self._state_dir_patterns(input.repo_path),
            data=data,
        )
        return parsed, report

    def _integrated(self, ref: ArtifactRef | None) -> dict[str, str]:
        if ref is None:
            return {}
        loaded: dict[str, str] = json.loads(self.state.artifacts.read_bytes(ref))
        return loaded

    def _state_dir_patterns(self, repo_path: str) -> list[str]:
        """uet's own state dir, when someone put it inside the repository."""
        home = self.state.home.resolve()
        repo = local_path(repo_path)  # a URL: the repository is on no disk of ours
        if repo is None or home == repo or repo not in home.parents:
            return []
        return [home.relative_to(repo).as_posix() + "/**"]

    @activity.defn
    @heartbeating
    async def quarantine_patch(self, input: QuarantineInput) -> QuarantineResult:
        """Keep the raw patch and why it was refused where a person can look at it."""
        folder = self.state.quarantine_dir(input.run_id) / input.workstream_id
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"{input.patch.attempt:02d}-{input.patch.patch_id}"
        data = self.state.artifacts.read_bytes(input.patch.ref)
        (folder / f"{stem}.diff").write_bytes(data)
        report = {
            "patch": input.patch.model_dump(mode="json"),
            "reason": input.reason,
            "validation": input.report.model_dump(mode="json") if input.report else None,
            "gate_output": input.gate_output,
        }
        (folder / f"{stem}.report.json").write_text(json.dumps(report, indent=2) + "\n")
        return QuarantineResult(folder=str(folder))
