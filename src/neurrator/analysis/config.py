"""Config section for population analyses, SAE concepts, single-neuron narration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AnalysisConfig(BaseModel):
    """Options for population analyses, SAE concepts, single-neuron narration."""

    model_config = ConfigDict(extra="forbid")
