"""Legacy UET workstream files → a uet phase spec. Pure: no I/O, no clock.

``uet convert`` reads the files and writes the YAML; this package only maps data, so the
mapping can be tested (and reused) without touching a disk.

The legacy format
=================

A legacy file (JSON) holds one of:

* one workstream object: ``{"id": "ws-a", "tool": "shell", "command": "…", …}``
* a list of workstream objects: ``[{…}, {…}]``
* a bundle: ``{"phase_id": …, "name": …, "title": …, "description": …,
  "acceptance_tests": […], "workstreams": [{…}, …]}`` (every key but ``workstreams`` optional)

Bundle (phase-level) fields:

==================== =========================================================================
``phase_id``         ``phase_id`` (normalized when it is not a valid uet identifier)
``name``             ``phase_id`` when there is no ``phase_id``; ``title`` when there is no
                     ``title``
``title``            ``title``
``description``      ``title`` when there is neither ``title`` nor ``name``
``acceptance_tests`` ``gates`` (phase gates, same forms as a workstream's)
==================== =========================================================================

Workstream fields:

==================== =========================================================================
``id``               ``workstream_id``; ids that are not valid uet identifiers
                     (``^[A-Za-z0-9][A-Za-z0-9._-]*$``, usable in a git ref) are normalized:
                     lowercase, whitespace → ``-``, other invalid characters dropped
``title``, ``name``  ``title``
``tool``             ``execution_request.tool_id``: ``aider``; ``claude``/``claude-code``/
                     ``claude_code`` → ``claude``; ``codex``; ``shell``/``sh``/``bash``/``cmd`` →
                     ``shell``; ``patch``. Others are kept as written (and reported).
                     Without ``tool``: ``shell`` when there is a ``command``, ``patch`` when
                     there is a ``patch_file``.
``command``, ``cmd`` ``execution_request.command`` (a string runs under ``/bin/sh -c``; for the
                     legacy ``bash`` tool a string becomes ``["bash", "-c", command]``)
``patch_file``       ``execution_request.patch_file`` (relative to the legacy file; the caller
                     rebases it onto the output file with ``rebase_path``)
``model``            ``execution_request.model``
``env``              ``execution_request.env`` (an object of strings)
``tasks``            ``execution_request.prompt``: a string, or a list of strings that becomes
                     one numbered list
``files_scope``      ``constraints.file_scope``: a list of globs → ``allowed_paths``; or
                     ``{"include": […], "exclude": […]}`` → ``allowed_paths``/``forbidden_paths``
``acceptance_tests`` ``acceptance_criteria.gates``: a list of command strings → gates
                     ``{gate_id: test-N, kind: unit, command}``; or a list of objects
                     ``{name|id, command|cmd, type|kind, timeout|timeout_seconds}``
``depends_on``       ``dependencies`` (rewritten when the ids they name were normalized)
``circuit_breaker``  ``resilience_policy``: ``max_failures``/``max_attempts`` → ``max_attempts``,
                     ``timeout``/``timeout_seconds`` → ``timeout_s`` (seconds, or ``"90s"``,
                     ``"5m"``, ``"1h"``), ``max_fixes``/``fix_attempts`` → ``max_fix_attempts``
``estimated_minutes`` ``estimated_duration_s`` (times 60)
==================== =========================================================================

Everything else (``priority``, ``owner``, …) has no place in a phase spec and is reported as an
:class:`Unmapped` entry with the reason, as are renamed ids and tools uet does not know. The
spec holds only what the legacy files said (defaults are left out), so it stays readable.
"""

from __future__ import annotations

from runtime.legacy.converter import convert
from runtime.legacy.model import (
    DEFAULT_PHASE_ID,
    Conversion,
    LegacyFormatError,
    Unmapped,
    normalize_id,
    short_json,
)

__all__ = [
    "DEFAULT_PHASE_ID",
    "Conversion",
    "LegacyFormatError",
    "Unmapped",
    "convert",
    "normalize_id",
    "short_json",
]
