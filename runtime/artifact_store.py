"""The artifact store a command uses: the one the workers use (activities/lib/artifacts/factory.py
reads the same environment). A configuration mistake is one line and exit code 2; a store that
cannot be reached, one line and exit code 1, before the command has done anything."""

from __future__ import annotations

from pathlib import Path

from temporalio.exceptions import ApplicationError

from activities.lib.artifacts import ArtifactStore, open_artifact_store
from runtime.errors import ExitCode, UserError


def artifact_store(home: Path, *, reachable: bool = True) -> ArtifactStore:
    """``reachable``: check it can be reached now (``uet gc`` goes on without it)."""
    try:
        store = open_artifact_store(home)
    except ApplicationError as exc:  # ArtifactStoreConfig: a URL that is not usable
        raise UserError(exc.message) from None
    if reachable:
        try:
            store.check()
        except ApplicationError as exc:
            raise UserError(exc.message, exit_code=ExitCode.FAILED) from None
    return store
