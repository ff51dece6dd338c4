"""Render a :class:`~neurrator.report.content.ReportContent` to one self-contained HTML page.

Jinja2 with autoescaping on for every value: narrations, captions, config text, file names
and error messages all come from outside and may hold markup. Figures are inlined as base64
data URIs, styles are inline, and the page carries no script at all; its Content-Security-
Policy forbids scripts and any fetch, so the file shows the same anywhere, offline.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from neurrator.report.content import Provenance, ReportContent, Table
from neurrator.report.figures import png_data_uri
from neurrator.report.tables import format_cell, json_tables

#: Manifest keys shown in the provenance summary, in this order; the rest go below it.
_SUMMARY_KEYS = ("name", "seed", "created", "git_commit", "platform", "argv")
_SHOWN_APART = {*_SUMMARY_KEYS, "versions", "stages", "stand_ins"}


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("neurrator.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = format_cell
    env.filters["data_uri"] = png_data_uri
    return env


def stage_rows(provenance: Provenance, stage_order: list[str]) -> list[dict[str, Any]]:
    """One row per pipeline stage: status (done / failed / running / not run), seconds, error."""
    recorded = provenance.stages
    names = [*stage_order, *(s for s in recorded if s not in stage_order)]
    rows = []
    for name in names:
        info = recorded.get(name, {})
        rows.append(
            {
                "stage": name,
                "status": str(info.get("status", "not run")),
                "seconds": info.get("seconds"),
                "error": info.get("error"),
            }
        )
    return rows


def provenance_tables(provenance: Provenance, *, max_rows: int = 60) -> list[Table]:
    """Run facts, package versions and any other manifest fields (e.g. backends) as tables."""
    manifest = provenance.manifest
    summary = [[k, _joined(manifest[k])] for k in _SUMMARY_KEYS if k in manifest]
    tables = [Table("Run", ["field", "value"], summary)] if summary else []
    versions = manifest.get("versions")
    if isinstance(versions, dict) and versions:
        tables.append(Table("Package versions", ["package", "version"], [[k, v] for k, v in versions.items()]))
    for key, value in manifest.items():
        if key not in _SHOWN_APART:
            tables.extend(json_tables(value, key, max_rows=max_rows))
    return tables


def _joined(value: Any) -> Any:
    return " ".join(map(str, value)) if isinstance(value, list) else value


def render_report(content: ReportContent, *, stage_order: list[str] | None = None, max_table_rows: int = 60) -> str:
    """The report page as an HTML string.

    Parameters
    ----------
    content : everything to show; absent parts carry notes and render as "not run".
    stage_order : pipeline stages in order, for the status strip (recorded stages are appended).
    """
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=content,
        stages=stage_rows(content.provenance, list(stage_order or [])),
        provenance_tables=provenance_tables(content.provenance, max_rows=max_table_rows),
        stand_ins=content.provenance.stand_ins,
    )
