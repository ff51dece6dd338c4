"""Typed benchmark results: :class:`BenchmarkTable` (methods × regimes × metrics).

Shape (``benchmark/tables.json``, written and read only through :meth:`BenchmarkTable.save` /
:meth:`BenchmarkTable.load`, validated on load):

.. code-block:: text

    BenchmarkTable
      budget            Budget (the one rule: step cap, validation, patience, batch, quick flag)
      active            name of the run's active split (Tables A2/A3)
      regimes           {name: RegimeInfo}   split, leakage record, window counts, blocks, flags
      rows              [MethodRow]          one per (regime, method)
        MethodRow.metrics {key: Metric}      value, CI (Interval), chance, p, Holm p, or "n/a"
        MethodRow.fit     FitReport          steps, stop reason, best step, CPU s, parameters
      columns           {key: Column}        what each metric key means: label, readout, kind
      context           narrator, scorer, stand-ins, seed, frame rate, n_units, ...

Every :class:`Metric` carries its own chance level and interval, and every column its readout,
so a renderer (``evaluate/tables.py``, the report) never has to know how a number was made.
A metric that does not apply (e.g. zero-shot identification for a method that can only
answer with training frames) has ``value=None`` and says why in ``note``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.evaluate.methods import Budget, FitReport
from neurrator.evaluate.stats import Interval

TABLE_FILE = "tables.json"
FORMAT = "neurrator-benchmark-table/1"


@dataclass
class Metric:
    """One number of the table.

    Attributes
    ----------
    value : the metric (``None``: not applicable, see ``note``).
    ci : its interval (block bootstrap unless stated in ``ci.method``), if any.
    chance : the chance level it is compared with (computed), if any.
    p_value, p_holm : test against chance or the floor, raw and Holm-adjusted within its table.
    note : e.g. why it is not applicable.
    """

    value: float | None
    ci: Interval | None = None
    chance: float | None = None
    p_value: float | None = None
    p_holm: float | None = None
    note: str = ""

    @property
    def applicable(self) -> bool:
        return self.value is not None

    @property
    def above_chance(self) -> bool:
        """The interval lies wholly above the chance level (a degenerate interval never does)."""
        return self.value is not None and self.ci is not None and self.chance is not None and self.ci.above(self.chance)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = None if self.ci is None else self.ci.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Metric:
        d = dict(d)
        d["ci"] = None if d.get("ci") is None else Interval.from_dict(d["ci"])
        return cls(**d)

    @classmethod
    def not_applicable(cls, why: str) -> Metric:
        return cls(value=None, note=why)


@dataclass(frozen=True)
class Column:
    """What a metric key means: a short label, the readout / definition, and how to print it."""

    label: str
    definition: str
    kind: str = "score"  # "score" (3 decimals), "fraction" (%), "rank"
    higher_is_better: bool = True


@dataclass
class MethodRow:
    """One method on one regime."""

    regime: str
    method: str
    family: str
    iterative: bool
    answers_unseen_frames: bool
    fit: FitReport
    metrics: dict[str, Metric] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"regime": self.regime, "method": self.method, "family": self.family, "iterative": self.iterative,
                "answers_unseen_frames": self.answers_unseen_frames, "fit": self.fit.to_dict(),
                "metrics": {k: m.to_dict() for k, m in self.metrics.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> MethodRow:
        return cls(regime=d["regime"], method=d["method"], family=d["family"], iterative=d["iterative"],
                   answers_unseen_frames=d["answers_unseen_frames"], fit=FitReport.from_dict(d["fit"]),
                   metrics={k: Metric.from_dict(m) for k, m in d["metrics"].items()})


@dataclass
class RegimeInfo:
    """One split the methods ran on.

    Attributes
    ----------
    name, description : the split.
    leakage : the split's guard record (``Split.leakage()``), overlap measured.
    n_train_windows, n_val_windows, n_test_windows, n_test_frames, n_blocks : sizes.
    blocks : what a statistical block is here (shots, 1 s runs, images).
    holds_out_frames : test frames are never training frames (zero-shot identification applies).
    all_at_chance : every method is at chance on frame identification (flag, with ``notes``).
    reference : extra per-regime rows that are not methods (shot oracle, floors), key → Metric.
    notes : free text lines for the table notes.
    """

    name: str
    description: str
    leakage: dict
    n_train_windows: int
    n_val_windows: int
    n_test_windows: int
    n_test_frames: int
    n_blocks: int
    blocks: str
    holds_out_frames: bool
    all_at_chance: bool = False
    reference: dict[str, Metric] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def leaky(self) -> bool:
        return bool(self.leakage.get("leaky")) or bool(self.leakage.get("overlap"))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["reference"] = {k: m.to_dict() for k, m in self.reference.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RegimeInfo:
        d = dict(d)
        d["reference"] = {k: Metric.from_dict(m) for k, m in d.get("reference", {}).items()}
        return cls(**d)


@dataclass
class BenchmarkTable:
    """Methods × regimes × metrics under one budget (see the module docstring for the shape)."""

    budget: Budget
    active: str
    regimes: dict[str, RegimeInfo]
    rows: list[MethodRow]
    columns: dict[str, Column]
    context: dict = field(default_factory=dict)

    # ---- access ----------------------------------------------------------------------------
    def methods(self, regime: str | None = None) -> list[str]:
        """Method labels in table order (of one regime, or of all)."""
        return list(dict.fromkeys(r.method for r in self.rows if regime is None or r.regime == regime))

    def row(self, regime: str, method: str) -> MethodRow | None:
        return next((r for r in self.rows if r.regime == regime and r.method == method), None)

    def metric(self, regime: str, method: str, key: str) -> Metric | None:
        r = self.row(regime, method)
        return None if r is None else r.metrics.get(key)

    # ---- validation and persistence --------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ValueError`` if rows point to unknown regimes/columns or repeat a (regime, method)."""
        if self.active not in self.regimes:
            raise ValueError(f"active split {self.active!r} is not among the regimes {sorted(self.regimes)}")
        seen = set()
        for r in self.rows:
            if r.regime not in self.regimes:
                raise ValueError(f"row {r.method!r} refers to unknown regime {r.regime!r}")
            if (r.regime, r.method) in seen:
                raise ValueError(f"two rows for {r.method!r} on {r.regime!r}")
            seen.add((r.regime, r.method))
            unknown = set(r.metrics) - set(self.columns)
            if unknown:
                raise ValueError(f"row {r.method!r} on {r.regime!r} has undeclared metrics {sorted(unknown)}")
            for key, m in r.metrics.items():
                if m.value is not None and not (isinstance(m.value, int | float) and math.isfinite(m.value)):
                    raise ValueError(f"{r.method!r} on {r.regime!r}: metric {key!r} is not a finite number ({m.value!r})")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "budget": self.budget.to_dict(), "active": self.active,
                "regimes": {k: v.to_dict() for k, v in self.regimes.items()},
                "rows": [r.to_dict() for r in self.rows], "columns": {k: asdict(c) for k, c in self.columns.items()},
                "context": self.context}

    @classmethod
    def from_dict(cls, d: dict) -> BenchmarkTable:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document (format {d.get('format')!r})")
        budget = {k: v for k, v in d["budget"].items() if k != "label"}
        table = cls(budget=Budget(**budget), active=d["active"],
                    regimes={k: RegimeInfo.from_dict(v) for k, v in d["regimes"].items()},
                    rows=[MethodRow.from_dict(r) for r in d["rows"]],
                    columns={k: Column(**c) for k, c in d["columns"].items()}, context=d.get("context", {}))
        table.validate()
        return table

    def save(self, folder: str | Path) -> Path:
        """Validate and write ``folder/tables.json`` atomically."""
        self.validate()
        return atomic_write_json(Path(folder) / TABLE_FILE, self.to_dict())

    @classmethod
    def load(cls, folder: str | Path) -> BenchmarkTable:
        """Read ``folder/tables.json``; :class:`InputError` naming the file if missing or invalid."""
        path = Path(folder) / TABLE_FILE
        if not path.is_file():
            raise InputError(path, "benchmark table not found; run `neurrator benchmark`")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"invalid benchmark table: {exc}") from None
