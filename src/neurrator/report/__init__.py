"""The HTML report: one self-contained page per run, results first.

The layer takes loaded objects (:class:`ReportInputs`: tables, JSON, PNG bytes, frames, the
binned dataset) and returns HTML; ``neurrator.stages.report`` does all the reading and writing.

>>> from neurrator.report import ReportContent, RunSummary, Provenance, render_report
>>> page = render_report(ReportContent("demo", RunSummary("demo"), Provenance(config_yaml=None, manifest={})))
>>> page.startswith("<!DOCTYPE html>")
True
"""

from __future__ import annotations

from neurrator.core.lazy import lazy_exports

_EXPORTS = {
    "ReportConfig": "neurrator.report.config",
    "ColumnGroup": "neurrator.report.content",
    "Estimate": "neurrator.report.content",
    "Figure": "neurrator.report.content",
    "Note": "neurrator.report.content",
    "Provenance": "neurrator.report.content",
    "RawFile": "neurrator.report.content",
    "ReportContent": "neurrator.report.content",
    "ResultRow": "neurrator.report.content",
    "ResultTable": "neurrator.report.content",
    "RunSummary": "neurrator.report.content",
    "Section": "neurrator.report.content",
    "Table": "neurrator.report.content",
    "Timeline": "neurrator.report.content",
    "TimelineWindow": "neurrator.report.content",
    "ReportInputs": "neurrator.report.build",
    "build_report": "neurrator.report.build",
    "raw_json": "neurrator.report.build",
    "data_uri": "neurrator.report.figures",
    "is_png": "neurrator.report.figures",
    "render_report": "neurrator.report.html",
    "format_cell": "neurrator.report.tables",
    "format_estimate": "neurrator.report.tables",
    "json_tables": "neurrator.report.tables",
    "build_timeline": "neurrator.report.timeline",
    "timeline_rows": "neurrator.report.timeline",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
