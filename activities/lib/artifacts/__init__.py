"""Content-addressed artifact store: blobs by sha256, referred to by ``ArtifactRef``s.

``base`` is the interface every backend has; ``local`` keeps blobs in a folder
(``$UET_HOME/artifacts`` by default), ``postgres`` in a PostgreSQL database, for workers and
commands that share no disk; ``factory.open_artifact_store`` picks one from the environment.
"""

from activities.lib.artifacts.base import ArtifactStore
from activities.lib.artifacts.factory import UnusableArtifactStore, open_artifact_store
from activities.lib.artifacts.local import LocalArtifactStore

__all__ = ["ArtifactStore", "LocalArtifactStore", "UnusableArtifactStore", "open_artifact_store"]
