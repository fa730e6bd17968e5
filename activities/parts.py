"""Reading and writing document parts (activities/lib/parts.py) for workflows, so no payload in
any history grows with the size of a run."""

from __future__ import annotations

from temporalio import activity

from activities.lib.heartbeat import heartbeating
from activities.lib.parts import MEDIA_TYPE, read_document
from activities.lib.state_dir import StateDir
from schemas.base import ArtifactRef
from schemas.workspace import PartText


class PartActivities:
    def __init__(self, state: StateDir) -> None:
        self.state = state

    @activity.defn
    @heartbeating
    async def store_part(self, input: PartText) -> ArtifactRef:
        return self.state.artifacts.put_bytes(input.text.encode(), MEDIA_TYPE)

    @activity.defn
    @heartbeating
    async def load_part(self, input: ArtifactRef) -> PartText:
        return PartText(text=read_document(self.state.artifacts, [input]))
