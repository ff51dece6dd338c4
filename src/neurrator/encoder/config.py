"""Config section for the encoder architecture and its training."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class EncoderConfig(BaseModel):
    """Options for the encoder architecture and its training."""

    model_config = ConfigDict(extra="forbid")
