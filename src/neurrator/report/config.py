"""Config section for the HTML report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ReportConfig(BaseModel):
    """Options for the HTML report (``neurrator report``)."""

    model_config = ConfigDict(extra="forbid")
    #: Draw the interactive narrated timeline (frames, rasters, sentences, scores).
    timeline: bool = True
    #: Most frame thumbnails in the timeline's sprite; every k-th frame is kept to stay under it.
    timeline_max_tiles: int = Field(300, ge=1, le=4000)
    #: Width in pixels of the frame thumbnails.
    thumbnail_width: int = Field(192, ge=32, le=1024)
    #: Units drawn in the timeline's raster (the most active of the units the model used).
    raster_units: int = Field(48, ge=1, le=512)
    #: Repeats with a raster (those holding the most shown windows); others show none.
    raster_repeats: int = Field(2, ge=1, le=20)
    #: Bins of context drawn on each side of the decoded window in the raster.
    raster_context_bins: int = Field(40, ge=0, le=480)
    #: Resolution of the figures the report draws itself (training curve, score distribution).
    figure_dpi: int = Field(100, ge=50, le=300)
    #: Longest table shown in full; longer ones are cut with a note.
    max_table_rows: int = Field(60, ge=5, le=5000)
    #: JSON artefacts larger than this are listed in the appendix, not shown.
    max_appendix_bytes: int = Field(300_000, ge=0)
