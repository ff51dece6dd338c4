"""Config section for binning, z-scoring, windows, splits and unit subsets."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class PreprocessConfig(BaseModel):
    """Options for binning, z-scoring, windows, splits and unit subsets."""

    model_config = ConfigDict(extra="forbid")
