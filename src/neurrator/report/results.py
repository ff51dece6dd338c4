"""This run's results as :class:`~neurrator.report.content.ResultTable` objects.

Each function turns one stage's result object into tables (methods as rows, regimes as column
groups, reference rows for chance and floors); nothing is computed here but formatting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
