"""Plain-text (Markdown) tables of evaluation results, with the paper's numbers beside ours.

Paper anchors are from ``shared/papers/neurrator-paper.txt`` Tables A1–A3 (real Allen
sessions, CLIP ViT-L/14-336 targets, LLaVA-1.5-7B narrator, BLIP-2 references). Results of a
run that uses offline stand-ins are labelled as such: the numbers are not comparable in level,
only in ordering.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

#: Table A1: SBERT by hold-out regime (mean).
PAPER_A1: dict[str, dict[str, float]] = {
    "Neurrator": {"sparse_random": 0.426, "contiguous_middle": 0.367, "front_only": 0.170},
    "CEBRA": {"sparse_random": 0.063, "contiguous_middle": 0.069, "front_only": 0.069},
    "Ridge": {"sparse_random": 0.047, "contiguous_middle": 0.061, "front_only": 0.076},
    "Word-salad floor": {"sparse_random": 0.007, "contiguous_middle": 0.020, "front_only": 0.062},
}

#: Table A2: embedding-level retrieval (CKA, kNN purity, R@10, median rank).
PAPER_A2: dict[str, dict[str, float]] = {
    "Neurrator": {"cka": 0.890, "knn_purity": 0.174, "r10": 0.388, "median_rank": 14},
    "CEBRA": {"cka": 0.016, "knn_purity": 0.030, "r10": 0.013, "median_rank": 436},
    "MLP-Patches": {"cka": 0.758, "knn_purity": 0.162, "r10": 0.210, "median_rank": 35},
}

#: Table A3: frame R@1, mean over the paper's four pilot sessions.
PAPER_A3: dict[str, float] = {
    "Ridge": 0.007,
    "PCA + kNN": 0.008,
    "CEBRA-128 + kNN": 0.052,
    "CEBRA-256 + kNN": 0.076,
    "CEBRA-512 + kNN": 0.103,
    "Chance": 0.0011,
}

#: CEBRA's own Allen result (Schneider et al. 2023): natural_movie_one frame identification
#: within 1 s, V1 pseudo-mouse, repeats 1–9 train / 10 test.
CEBRA_PUBLISHED = {"200 V1 neurons": 0.94, "1000 V1 neurons": 0.99, "kNN baseline, 200": 0.82, "kNN baseline, 1000": 0.92}


def paper_row_key(method: str) -> str | None:
    """The paper's row for one of our method labels (``"CEBRA-512 + kNN"`` → ``"CEBRA"``)."""
    if method.startswith("Neurrator"):
        return "Neurrator"
    if method.startswith("CEBRA"):
        return "CEBRA"
    if method.startswith("Ridge"):
        return "Ridge"
    if method.startswith("MLP"):
        return "MLP-Patches"
    if method.lower().startswith("word-salad"):
        return "Word-salad floor"
    return None


def fmt(value: float | None, kind: str = "float") -> str:
    """Format one cell: ``"float"`` (3 decimals), ``"pct"`` (1 decimal %), ``"int"``, or ``"p"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "pct":
        return f"{100 * value:.1f}%" if value >= 0.01 or value == 0 else f"{100 * value:.2f}%"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "p":
        return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"
    return f"{value:.3f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
                   note: str | None = None) -> str:
    """A GitHub-style Markdown table, columns padded for terminal reading."""
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    out = [f"**{title}**", ""] if title else []
    out += [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])]
    if note:
        out += ["", note]
    return "\n".join(out)


def stand_in_note(stand_ins: dict[str, str]) -> str | None:
    """One line naming the stand-ins that make a run's numbers not comparable to the paper's."""
    if not stand_ins:
        return None
    return "Stand-in run (" + "; ".join(sorted(stand_ins)) + "): paper numbers are for reference only."
