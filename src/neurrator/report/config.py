"""Config section for the HTML report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReportConfig(BaseModel):
    """Options for the HTML report."""

    model_config = ConfigDict(extra="forbid")
