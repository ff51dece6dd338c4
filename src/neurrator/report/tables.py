"""Turn result JSON of any reasonable shape into report tables, without computing anything.

Stages write their summaries as nested JSON whose exact keys evolve; the report shows them
faithfully rather than hard-coding a schema:

- a mapping of scalars → one two-column table (key, value);
- a mapping whose values are all mappings of scalars → one table, a row per key;
- a list of mappings of scalars (records) → one table, a row per record;
- anything mixed → the scalars in one table, then each nested part on its own, titled by path.

Long lists of numbers (per-window arrays) are summarised by their length, never re-computed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from neurrator.report.content import Cell, Estimate, Table

_MAX_DEPTH = 5


def format_cell(value: Cell) -> str:
    """A cell as display text: floats to 4 significant digits, tiny p-values in e-notation."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if value == 0:
            return "0"
        if abs(value) >= 1e4:
            return f"{value:,.0f}"
        if abs(value) < 1e-3:
            return f"{value:.2e}"
        return f"{value:.4g}"
    return str(value)


def _number(value: float, unit: str) -> str:
    if unit == "percent":
        return f"{100 * value:.1f}"
    if unit in ("rank", "count"):
        return f"{value:,.0f}"
    return f"{value:.3f}"


def format_estimate(estimate: Estimate) -> tuple[str, str]:
    """(value text, interval text) of a result cell; percents are shown as % without the sign
    in the interval, e.g. ``("47.6 %", "45.1–50.0")``.

    >>> format_estimate(Estimate(0.5089, 0.4919, 0.5249))
    ('0.509', '0.492–0.525')
    >>> format_estimate(Estimate(None, missing="n/a"))
    ('n/a', '')
    """
    if estimate.value is None or not math.isfinite(estimate.value):
        return estimate.missing, ""
    text = _number(estimate.value, estimate.unit) + (" %" if estimate.unit == "percent" else "")
    interval = ""
    if estimate.low is not None and estimate.high is not None:
        interval = f"{_number(estimate.low, estimate.unit)}–{_number(estimate.high, estimate.unit)}"
    return text, interval


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and all(_is_scalar(v) for v in value)


def _scalar_cell(value: Any) -> Cell:
    """A JSON value as one cell; short scalar lists are joined, long ones summarised."""
    if _is_scalar(value):
        return value
    if _is_scalar_list(value):
        if not value:
            return "(none)"
        if len(value) <= 6:
            return ", ".join(format_cell(v) for v in value)
        return f"[{len(value)} values]"
    if isinstance(value, Mapping):
        return f"{{{len(value)} fields}}"
    if isinstance(value, Sequence):
        return f"[{len(value)} items]"
    return str(value)


def _is_flat_record(value: Any) -> bool:
    return isinstance(value, Mapping) and all(_is_scalar(v) or _is_scalar_list(v) for v in value.values())


def _union_keys(records: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(str(k) for k in record))
    return list(keys)


def _cut(rows: list[list[Cell]], max_rows: int) -> tuple[list[list[Cell]], str]:
    if len(rows) <= max_rows:
        return rows, ""
    return rows[:max_rows], f"first {max_rows} of {len(rows)} rows shown"


def json_tables(obj: Any, title: str, *, max_rows: int = 60) -> list[Table]:
    """Tables showing ``obj`` (parsed JSON), titled ``title`` and ``title › key`` for parts.

    Examples
    --------
    >>> [t.rows for t in json_tables({"sbert": 0.41, "n": 12}, "summary")]
    [[['sbert', 0.41], ['n', 12]]]
    """
    return _tables(obj, title, max_rows, depth=0)


def _tables(obj: Any, title: str, max_rows: int, depth: int) -> list[Table]:
    if depth > _MAX_DEPTH:
        return [Table(title, ["value"], [[_scalar_cell(obj)]], note="nested too deep to show")]
    if _is_scalar(obj) or _is_scalar_list(obj):
        return [Table(title, ["value"], [[_scalar_cell(obj)]])]

    if isinstance(obj, Mapping | Sequence) and not isinstance(obj, str) and not obj:
        return []  # an empty part (e.g. no skipped pools) has nothing to show
    if isinstance(obj, Mapping):
        if all(_is_flat_record(v) for v in obj.values()) and any(isinstance(v, Mapping) for v in obj.values()):
            records = {str(k): v for k, v in obj.items()}
            columns = _union_keys(list(records.values()))
            rows = [[key, *(_scalar_cell(rec.get(c)) for c in columns)] for key, rec in records.items()]
            rows, note = _cut(rows, max_rows)
            return [Table(title, ["", *columns], rows, note=note)]
        scalars = [[str(k), _scalar_cell(v)] for k, v in obj.items() if _is_scalar(v) or _is_scalar_list(v)]
        tables: list[Table] = []
        if scalars:
            rows, note = _cut(scalars, max_rows)
            tables.append(Table(title, ["key", "value"], rows, note=note))
        for key, value in obj.items():
            if not (_is_scalar(value) or _is_scalar_list(value)):
                tables.extend(_tables(value, f"{title} › {key}", max_rows, depth + 1))
        return tables

    if isinstance(obj, Sequence) and not isinstance(obj, str):
        if obj and all(_is_flat_record(v) for v in obj):
            columns = _union_keys(obj)
            rows = [[_scalar_cell(rec.get(c)) for c in columns] for rec in obj]
            rows, note = _cut(rows, max_rows)
            return [Table(title, columns, rows, note=note)]
        tables = []
        for i, value in enumerate(obj[:max_rows]):
            tables.extend(_tables(value, f"{title} › {i}", max_rows, depth + 1))
        return tables

    return [Table(title, ["value"], [[str(obj)]])]
