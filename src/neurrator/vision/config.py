"""Config section for the vision space (training target) and the patch-target cache."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class VisionConfig(BaseModel):
    """Options for the vision space (training target) and the patch-target cache."""

    model_config = ConfigDict(extra="forbid")
