"""The report's result tables as plain text, for the terminal (``neurrator demo`` ends with them)."""

from __future__ import annotations

from collections.abc import Sequence

from neurrator.evaluate.tables import markdown_table
from neurrator.report.content import Estimate, ResultTable
from neurrator.report.tables import format_estimate


def estimate_text(estimate: Estimate) -> str:
    """``0.509 [0.492–0.525]``, ``n/a``, ``—``; a flag in parentheses."""
    value, interval = format_estimate(estimate)
    return value + (f" [{interval}]" if interval else "") + (f" ({estimate.flag})" if estimate.flag else "")


def result_table_text(table: ResultTable) -> str:
    """One result table as Markdown: this run's columns, then the paper's (prefixed "paper")."""
    header = [table.row_header, *(f"{g.label} · {c}" if c else g.label for g in table.groups for c in g.columns),
              *(f"paper {g.label}" + (f" · {c}" if c else "") for g in table.paper_groups for c in g.columns)]
    blank = ["—"] * table.n_paper_columns
    rows = [[row.label, *map(estimate_text, row.cells), *(map(estimate_text, row.paper) if row.paper else blank)]
            for row in table.rows]
    return markdown_table(header, rows, title=table.title, note=" ".join(table.notes) or None)


def results_text(tables: Sequence[ResultTable]) -> str:
    """Every result table, one after another."""
    return "\n\n".join(result_table_text(t) for t in tables)
