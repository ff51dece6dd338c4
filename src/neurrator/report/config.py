"""Config section for the HTML report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """Options for the HTML report (``neurrator report``)."""

    model_config = ConfigDict(extra="forbid")
    #: Test frames shown in the narrated timeline, spread evenly over the test frames.
    timeline_frames: int = Field(8, ge=0, le=64)
    #: Units drawn in each timeline raster (the most active of the units the model used).
    raster_units: int = Field(32, ge=1, le=512)
    #: Bins of context drawn on each side of the decoded window in the raster.
    raster_context_bins: int = Field(20, ge=0, le=240)
    #: Width in pixels of the frame thumbnails.
    thumbnail_width: int = Field(200, ge=32, le=1024)
    #: Resolution of the figures the report draws itself (rasters, score distribution).
    figure_dpi: int = Field(100, ge=50, le=300)
    #: Longest table shown in full; longer ones are cut with a note.
    max_table_rows: int = Field(60, ge=5, le=5000)
