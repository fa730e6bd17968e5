"""Shared building blocks for every model."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints


class Model(BaseModel):
    """Base for every uet model: unknown fields are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)


# Names that become parts of git refs and Temporal workflow ids.
Identifier = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length=1, max_length=100),
]
GitSha = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}([0-9a-f]{24})?$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ArtifactRef(Model):
    """A blob in the content-addressed artifact store; payloads carry this, never the bytes."""

    sha256: Sha256
    size: int = Field(ge=0)
    uri: str = Field(
        description="Where the blob lives, e.g. file:///home/me/.uet/artifacts/sha256/ab/…"
    )
    media_type: str = "application/octet-stream"
