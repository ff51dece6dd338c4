"""Config section for scoring, controls and baselines."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EvaluateConfig(BaseModel):
    """Options for scoring, controls and baselines."""

    model_config = ConfigDict(extra="forbid")
