"""Config section for the narrator and the reference captioner."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class NarrateConfig(BaseModel):
    """Options for the narrator and the reference captioner."""

    model_config = ConfigDict(extra="forbid")
