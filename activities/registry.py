"""Every activity a uet worker runs: the one list to add a new activity class to."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from activities.caches import CacheActivities
from activities.forge import ForgeActivities
from activities.gates import GateActivities
from activities.lib.state_dir import StateDir
from activities.notify import NotifyActivities
from activities.parts import PartActivities
from activities.patches import PatchActivities
from activities.planning import PlanningActivities
from activities.ready_patch import ReadyPatchActivities
from activities.recovery import RecoveryActivities
from activities.saga import SagaActivities
from activities.tools import ToolActivities
from activities.workers import WorkerActivities
from activities.workspace import WorkspaceActivities

#: Each takes the worker's state dir; every method decorated ``@activity.defn`` is registered.
ACTIVITY_CLASSES: tuple[type, ...] = (
    PlanningActivities,
    WorkspaceActivities,
    ToolActivities,
    PatchActivities,
    ReadyPatchActivities,
    GateActivities,
    CacheActivities,
    RecoveryActivities,
    SagaActivities,
    PartActivities,
    WorkerActivities,
    NotifyActivities,
    ForgeActivities,
)


def all_activities(state: StateDir) -> list[Callable[..., Any]]:
    """The activity methods of every class, bound to one instance each."""
    found: list[Callable[..., Any]] = []
    for cls in ACTIVITY_CLASSES:
        instance = cls(state)
        for name in sorted(vars(cls)):
            method = getattr(instance, name)
            # What @activity.defn marks (temporalio.activity._Definition.from_callable reads it).
            if callable(method) and hasattr(method, "__temporal_activity_definition"):
                found.append(method)
    return found
