"""The HTML report: one self-contained page per run.

The layer takes loaded objects (tables, JSON, PNG bytes, frames, the binned dataset) and
returns HTML; ``neurrator.stages.report`` does all the reading and the writing.

>>> from neurrator.report import ReportContent, Provenance, render_report
>>> html = render_report(ReportContent("demo", Provenance(config_yaml=None, manifest={})))
>>> html.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

from neurrator.core.lazy import lazy_exports

_EXPORTS = {
    "ReportConfig": "neurrator.report.config",
    "Figure": "neurrator.report.content",
    "Note": "neurrator.report.content",
    "Provenance": "neurrator.report.content",
    "ReportContent": "neurrator.report.content",
    "Section": "neurrator.report.content",
    "Table": "neurrator.report.content",
    "Timeline": "neurrator.report.content",
    "TimelineEntry": "neurrator.report.content",
    "is_png": "neurrator.report.figures",
    "png_data_uri": "neurrator.report.figures",
    "raster_png": "neurrator.report.figures",
    "score_distribution_png": "neurrator.report.figures",
    "thumbnail_png": "neurrator.report.figures",
    "training_curve_png": "neurrator.report.figures",
    "render_report": "neurrator.report.html",
    "format_cell": "neurrator.report.tables",
    "json_tables": "neurrator.report.tables",
    "TimelineRows": "neurrator.report.timeline",
    "build_timeline": "neurrator.report.timeline",
    "select_windows": "neurrator.report.timeline",
    "timeline_rows": "neurrator.report.timeline",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["Figure", "Note", "Provenance", "ReportConfig", "ReportContent", "Section", "Table", "Timeline", "TimelineEntry", "TimelineRows", "build_timeline", "format_cell", "is_png", "json_tables", "png_data_uri", "raster_png", "render_report", "score_distribution_png", "select_windows", "thumbnail_png", "timeline_rows", "training_curve_png"]
