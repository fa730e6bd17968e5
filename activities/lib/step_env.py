"""What a tool, a gate or a setup command sees of the worker's environment: a small safe base,
uet's own ``UET_*`` variables, what its adapter needs (``ANTHROPIC_API_KEY`` for ``claude``) and
what the workstream passes through (``env_passthrough``) — never the rest. A worker's
environment holds its secrets (forge tokens, database URLs, other tools' keys); a tool that
cannot see them cannot leak them.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable, Mapping

from activities.lib.git import GIT_SAFE

#: What any program expects to find, and nothing that grants anything.
SAFE_BASE: tuple[str, ...] = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TERM", "TZ",
    "TMPDIR", "COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "CI",
    # Reaching the network the way this host does.
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "UET_*",
)  # fmt: skip
#: uet's own variables that are not for tools: credentials, or where uet keeps its state.
NOT_FOR_TOOLS: tuple[str, ...] = ("UET_DATABASE_URL", "UET_ARTIFACTS_URL", "UET_HOME")


def step_env(
    extra: Mapping[str, str] | None = None,
    *,
    needs: Iterable[str] = (),
    passthrough: Iterable[str] = (),
    source: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one step's process: ``source`` (the worker's) filtered to the safe
    base, ``needs`` and ``passthrough`` (names, or ``PREFIX_*``), git's own settings never
    inherited, then ``extra`` (uet's variables, the workspace's and the request's env)."""
    source = os.environ if source is None else source
    wanted = (*SAFE_BASE, *needs, *passthrough)
    env = {
        name: value
        for name, value in source.items()
        if _listed(name, wanted) and not name.startswith("GIT_") and name not in NOT_FOR_TOOLS
    }
    env.update(GIT_SAFE)
    env.update(extra or {})
    return env


def _listed(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p or (p.endswith("*") and fnmatch.fnmatchcase(name, p)) for p in patterns)
