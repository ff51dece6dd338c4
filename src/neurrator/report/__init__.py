"""The HTML report: one self-contained page per run.

The layer takes loaded objects (tables, JSON, PNG bytes, frames, the binned dataset) and
returns HTML; ``neurrator.stages.report`` does all the reading and the writing.

>>> from neurrator.report import ReportContent, Provenance, render_report
>>> html = render_report(ReportContent("demo", Provenance(config_yaml=None, manifest={})))
>>> html.startswith("<!DOCTYPE html>")
True
"""

from neurrator.report.config import ReportConfig
from neurrator.report.content import (
    Figure,
    Note,
    Provenance,
    ReportContent,
    Section,
    Table,
    Timeline,
    TimelineEntry,
)
from neurrator.report.figures import (
    is_png,
    png_data_uri,
    raster_png,
    score_distribution_png,
    thumbnail_png,
    training_curve_png,
)
from neurrator.report.html import render_report
from neurrator.report.tables import format_cell, json_tables
from neurrator.report.timeline import TimelineRows, build_timeline, select_windows, timeline_rows

__all__ = [
    "Figure",
    "Note",
    "Provenance",
    "ReportConfig",
    "ReportContent",
    "Section",
    "Table",
    "Timeline",
    "TimelineEntry",
    "TimelineRows",
    "build_timeline",
    "format_cell",
    "is_png",
    "json_tables",
    "png_data_uri",
    "raster_png",
    "render_report",
    "score_distribution_png",
    "select_windows",
    "thumbnail_png",
    "timeline_rows",
    "training_curve_png",
]
