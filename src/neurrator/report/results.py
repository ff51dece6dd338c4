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
#: Embedding metrics of the evaluate stage: (summary key, chance key, column, unit).
_EMBEDDING = (
    ("cka", None, "CKA", "score"),
    ("knn_purity", "knn_purity_chance", "kNN purity", "score"),
    ("r1", "r1_chance", "R@1", "percent"),
    ("r10", "r10_chance", "R@10", "percent"),
    ("median_rank", "median_rank_chance", "median rank", "rank"),
    ("frame_id_within_tol", "frame_id_within_tol_chance", "within ±1 s", "percent"),
)


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
        columns = ColumnGroup(f"{split} split", tuple(m[2] for m in present))
        cells = tuple(Estimate(float(embedding[k]), unit=u) for k, _, _, u in present)
        chance = tuple(Estimate(float(embedding[c]), unit=u) if c and c in embedding else Estimate(None)
                       for _, c, _, u in present)
        tables.append(ResultTable(
            key="embedding",
            title=f"Embedding level · predicted patches against the true frames' "
                  f"({embedding['n_windows']} test windows, {embedding['n_candidates']} candidate frames)",
            groups=(columns,),
            rows=(ResultRow(method, cells), ResultRow("chance", chance, kind="reference")),
            notes=tuple(n for n in (f"Representation: {embedding.get('representation', '')}.",
                                    f"kNN purity: {embedding.get('knn_purity_definition', '')}." if "knn_purity" in embedding else "",
                                    f"Within ±1 s: the best candidate lies within {embedding['tolerance_frames']} frames "
                                    "of the true frame." if "tolerance_frames" in embedding else "") if n),
        ))
    return tables
