"""This run's results as :class:`~neurrator.report.content.ResultTable` objects.

Each function turns one stage's result object into tables (methods as rows, regimes as column
groups, reference rows for chance and floors); nothing is computed here but formatting. The
paper's numbers come from :mod:`neurrator.evaluate.paper`, in their own column group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neurrator.evaluate import paper
from neurrator.evaluate.methods import FitReport
from neurrator.evaluate.results import BenchmarkTable, Metric
from neurrator.report.content import ColumnGroup, Estimate, ResultRow, ResultTable

#: Floors of the evaluate stage's narration scores, in display order.
_FLOORS = {
    "shuffled": "shuffled pairing (another shot's references)",
    "random_caption": "random caption of another shot",
    "word_salad": "word salad",
}
#: Embedding metrics of the evaluate stage (``evaluate.results.Metric`` dicts, each with its
#: computed chance level): (summary key, column, unit).
_EMBEDDING = (
    ("cka", "CKA", "score"),
    ("knn_purity", "kNN purity", "score"),
    ("r1", "R@1", "percent"),
    ("r10", "R@10", "percent"),
    ("median_rank", "median rank", "rank"),
    ("within_1s", "within ±1 s", "percent"),
    ("within_shot_r1", "within-shot R@1", "percent"),
)


def _metric(m: Mapping[str, Any], unit: str) -> Estimate:
    ci = m.get("ci") or {}
    return Estimate(m.get("value"), ci.get("low"), ci.get("high"), unit=unit)


def _interval(score: Mapping[str, Any]) -> Estimate:
    return Estimate(float(score["mean"]), float(score["ci_low"]), float(score["ci_high"]))


def evaluation_tables(summary: Mapping[str, Any], *, method: str) -> list[ResultTable]:
    """The evaluate stage's narration scores and embedding metrics on the active split.

    Parameters
    ----------
    summary : ``evaluate/summary.json`` (``scores``, ``embedding``, ``split``, ``ci``, ...).
    method : the row label of this run's encoder and narrator.
    """
    split = summary["split"]["name"]
    group = ColumnGroup(f"{split} split", ("SBERT",), note=summary["split"].get("description", ""))
    scores = summary["scores"]
    rows = [ResultRow(method, (_interval(scores[summary["headline"]]),))]
    rows += [ResultRow(f"floor: {label}", (_interval(scores[key]),), kind="reference")
             for key, label in _FLOORS.items() if key in scores]
    narration = ResultTable(
        key="narration",
        title=f"Narration fidelity · SBERT cosine to the references, {summary['n_windows']} test windows "
              f"({summary['n_frames']} frames)",
        groups=(group,),
        rows=tuple(rows),
        notes=(f"Headline: {summary['headline_definition']}.", f"Interval: {summary['ci']}."),
    )
    tables = [narration]
    embedding = summary.get("embedding")
    if embedding:
        present = [m for m in _EMBEDDING if m[0] in embedding]
        columns = ColumnGroup(f"{split} split", tuple(m[1] for m in present))
        cells = tuple(_metric(embedding[k], u) for k, _, u in present)
        chance = tuple(Estimate(embedding[k].get("chance"), unit=u) for k, _, u in present)
        tables.append(ResultTable(
            key="embedding",
            title=f"Embedding level · predicted patches against every stimulus frame ({summary['embedding_windows']} "
                  "test windows)" if "embedding_windows" in summary else "Embedding level · predicted patches "
                  "against every stimulus frame",
            groups=(columns,),
            rows=(ResultRow(method, cells), ResultRow("chance", chance, kind="reference")),
            notes=(("Readout: cosine between full patch tensors centred on the mean training-frame target "
                    "(docs/evaluation.md). Chance: computed from the candidate sets; CKA and kNN purity: 95th "
                    "percentile of permuted pairings."),),
        ))
    return tables


# ---- the benchmark ----------------------------------------------------------------------------
#: Column kinds of the benchmark (``Column.kind``) → the report's units.
_UNITS = {"score": "score", "fraction": "percent", "rank": "rank", "count": "count"}


def metric_estimate(m: Metric | None, kind: str = "score", *, chance: bool = False) -> Estimate:
    """A benchmark metric as a cell: value, its interval (a degenerate one is not shown), its
    chance level (``chance=True``), "n/a" with the reason when it does not apply, and a flag when
    its interval is not above its chance level."""
    unit = _UNITS.get(kind, "score")
    if m is None:
        return Estimate(None, unit=unit)
    if not m.applicable:
        return Estimate(None, unit=unit, missing="n/a", note=m.note)
    ci = m.ci if m.ci is not None and not m.ci.degenerate else None
    flag = "not above chance" if m.chance is not None and ci is not None and not m.above_chance else ""
    return Estimate(m.value, None if ci is None else ci.low, None if ci is None else ci.high, unit=unit,
                    chance=m.chance if chance else None, flag=flag)


def _paper(family: str, table: str, column: str, kind: str = "score") -> Estimate:
    number = paper.for_method(family, table, column)
    return Estimate(None if number is None else number.value, unit=_UNITS.get(kind, "score"))


def _chance_row(table: BenchmarkTable, regimes: Sequence[str], keys: Sequence[str], *, unseen: bool = False) -> ResultRow:
    """Each column's chance level (the same for every method of a regime: it depends on the candidates)."""
    cells = []
    for regime in regimes:
        row = next((r for r in table.rows if r.regime == regime and (r.answers_unseen_frames or not unseen)), None)
        for key in keys:
            m = None if row is None else row.metrics.get(key)
            cells.append(Estimate(None if m is None else m.chance, unit=_UNITS.get(table.columns[key].kind, "score")))
    return ResultRow("chance", tuple(cells), kind="reference")


def _family(table: BenchmarkTable, method: str) -> str:
    return next(r.family for r in table.rows if r.method == method)


def _fit_text(fit: FitReport) -> str:
    if fit.stop_reason in ("closed_form", "checkpoint"):
        return f"{fit.stop_reason.replace('_', ' ')}, {fit.cpu_seconds:.0f} CPU s"
    return f"{fit.stop_reason.replace('_', ' ')} at {fit.steps} steps (best {fit.best_step}), {fit.cpu_seconds:.0f} CPU s"


def benchmark_tables(table: BenchmarkTable) -> list[ResultTable]:
    """Tables A1 (held-out caption, the headline; released-script compatible beside the paper's
    numbers), A2 and A3 on the active split, within-shot and zero-shot identification."""
    mode = "quick" if table.budget.quick else "full"
    regimes = [r for r in table.regimes if r != table.active] or [table.active]
    cols = table.columns
    methods = [m for m in table.methods() if any(table.row(r, m) for r in regimes)]
    label = lambda r: f"{r}{' (LEAKY)' if table.regimes[r].leaky else ''}"  # noqa: E731
    budget = f"Budget: {table.budget.label}."
    flags = tuple(f"{name}: {note}" for name, info in table.regimes.items() for note in info.notes)
    out = []

    # A1 headline: held-out caption.
    rows = [ResultRow(m, tuple(c for r in regimes for c in (
        metric_estimate(table.metric(r, m, "sbert")), metric_estimate(table.metric(r, m, "sbert_shuffled")),
        metric_estimate(table.metric(r, m, "copy_rate"), "fraction")))) for m in methods]
    out.append(ResultTable(
        key="a1", title=f"Table A1 · SBERT by hold-out regime, held-out caption (headline) [{mode}]",
        groups=tuple(ColumnGroup(label(r), ("SBERT", "other-shot", "copy"), note=table.regimes[r].description)
                     for r in regimes),
        rows=tuple(rows), notes=(budget, f"SBERT: {cols['sbert'].definition}.",
                                 f"other-shot: {cols['sbert_shuffled'].definition}.",
                                 f"copy: {cols['copy_rate'].definition}.", *flags)))

    # A1 released-script compatible, the paper's numbers beside it.
    rows = [ResultRow(m, tuple(c for r in regimes for c in (
        metric_estimate(table.metric(r, m, "released")), metric_estimate(table.metric(r, m, "released_floor")))),
        paper=tuple(_paper(_family(table, m), "A1", r.removesuffix("_paper")) for r in regimes)) for m in methods]
    rows.append(ResultRow("floor (paper)", tuple(Estimate(None) for _ in range(2 * len(regimes))),
                          paper=tuple(_paper("floor", "A1", r.removesuffix("_paper")) for r in regimes), kind="reference"))
    out.append(ResultTable(
        key="a1_released", title=f"Table A1 · released-script compatible scoring [{mode}]",
        groups=tuple(ColumnGroup(label(r), ("SBERT", "floor")) for r in regimes),
        paper_groups=(ColumnGroup("Table A1", tuple(r.removesuffix("_paper") for r in regimes)),),
        paper_source=paper.NEURRATOR,
        rows=tuple(rows), notes=(f"SBERT: {cols['released'].definition}.", f"floor: {cols['released_floor'].definition}.",
                                 f"Paper: {paper.PROTOCOLS[paper.NEURRATOR]}.",
                                 "The paper's regimes are its leaky definitions; ours are leakage-free.")))

    # A2 and A3 on the active split.
    active = table.regimes[table.active]
    a2_keys = [("cka", "CKA", True), ("cka_pooled", "CKA (pooled)", True), ("knn_purity", "kNN purity", True),
               ("r10", "R@10", False), ("median_rank", "median rank", False)]
    rows = []
    for m in table.methods(table.active):
        row = table.row(table.active, m)
        rows.append(ResultRow(m, tuple(metric_estimate(row.metrics.get(k), cols[k].kind, chance=per_row)
                                       for k, _, per_row in a2_keys),
                              paper=(_paper(row.family, "A2", "cka"), _paper(row.family, "A2", "r10", "fraction"),
                                     _paper(row.family, "A2", "median_rank", "rank"))))
    oracle = active.reference
    rows.append(ResultRow("shot oracle", (metric_estimate(oracle.get("shot_oracle_cka")),
                                          metric_estimate(oracle.get("shot_oracle_cka_pooled")),
                                          Estimate(None), Estimate(None), Estimate(None)), kind="reference"))
    chance = _chance_row(table, [table.active], [k for k, _, _ in a2_keys])
    rows.append(ResultRow("chance", tuple(Estimate(None, missing="per row") if per_row else c
                                          for c, (_, _, per_row) in zip(chance.cells, a2_keys, strict=True)),
                          kind="reference"))
    out.append(ResultTable(
        key="a2", title=f"Table A2 · embedding level, split {table.active} [{mode}]",
        groups=(ColumnGroup(label(table.active), tuple(name for _, name, _ in a2_keys)),),
        paper_groups=(ColumnGroup("Table A2", ("CKA", "R@10", "median rank")),),
        paper_source=paper.NEURRATOR, rows=tuple(rows),
        notes=(f"Paper: {paper.PROTOCOLS[paper.NEURRATOR]}.",
               "CKA and kNN purity on full patch tensors; chance: 95th percentile of permuted pairings (per row).",
               f"Shot oracle: the mean target of the true shot ({active.blocks}).", f"R@10: {cols['r10'].definition}.")))

    a3_keys = [("r1", "frame R@1"), ("within_1s", "±1 s"), ("within_1s_pooled", "±1 s (pooled)")]
    rows = []
    for m in table.methods(table.active):
        row = table.row(table.active, m)
        rows.append(ResultRow(m, tuple(metric_estimate(row.metrics.get(k), cols[k].kind) for k, _ in a3_keys),
                              paper=(_paper(row.family, "A3", "mean_r1", "fraction"),),
                              note=_fit_text(row.fit)))
    rows.append(ResultRow("chance", _chance_row(table, [table.active], [k for k, _ in a3_keys]).cells,
                          paper=(_paper("chance", "A3", "mean_r1", "fraction"),), kind="reference"))
    cebra = "; ".join(f"{n.row}: {100 * n.value:.1f} %" for n in paper.peer_results(paper.CEBRA))
    out.append(ResultTable(
        key="a3", title=f"Table A3 · frame identification, split {table.active} [{mode}]",
        groups=(ColumnGroup(label(table.active), tuple(name for _, name in a3_keys)),),
        paper_groups=(ColumnGroup("Table A3", ("R@1, mean of 4 sessions",)),),
        paper_source=paper.NEURRATOR, rows=tuple(rows),
        notes=(f"Paper: {paper.PROTOCOLS[paper.NEURRATOR]}.", f"One readout for every row: {cols['r1'].definition}.",
               "Fits: " + "; ".join(f"{m}: {_fit_text(table.row(table.active, m).fit)}"
                                     for m in table.methods(table.active)) + ".",
               f"Another protocol, not comparable: {paper.PROTOCOLS[paper.CEBRA]}: {cebra}.")))

    # Within-shot identification on every regime.
    regs = list(table.regimes)
    rows = [ResultRow(m, tuple(metric_estimate(table.metric(r, m, "within_shot_r1"), "fraction") for r in regs))
            for m in table.methods()]
    rows.append(_chance_row(table, regs, ["within_shot_r1"]))
    out.append(ResultTable(
        key="within_shot", title=f"Within-shot frame identification · R@1 [{mode}]",
        groups=tuple(ColumnGroup(label(r), ("R@1",)) for r in regs), rows=tuple(rows),
        notes=(f"{cols['within_shot_r1'].definition} ({active.blocks}).",)))

    # Zero-shot identification on the regimes that hold frames out.
    held = [r for r, info in table.regimes.items() if info.holds_out_frames]
    if held:
        keys = ["zero_shot_r1", "zero_shot_r10", "zero_shot_within_1s"]
        rows = [ResultRow(m, tuple(metric_estimate(table.metric(r, m, k), "fraction") for r in held for k in keys))
                for m in table.methods() if any(table.row(r, m) for r in held)]
        rows.append(_chance_row(table, held, keys, unseen=True))
        out.append(ResultTable(
            key="zero_shot", title=f"Zero-shot identification · candidates are the held-out frames only [{mode}]",
            groups=tuple(ColumnGroup(label(r), ("R@1", "R@10", "±1 s")) for r in held), rows=tuple(rows),
            notes=("n/a: the method can only answer with training frames.",)))
    return out
