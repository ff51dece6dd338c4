"""Every published number the project sets beside its own, each with its table and row.

This is the only module that may hold a paper or peer number; tables, stages, the report and
the docs look them up here (:func:`lookup`, :func:`numbers`). Each :class:`PaperNumber` says
where it comes from and under which **protocol** it was measured, so a number measured another
way (CEBRA's own Allen protocol) never sits under a heading of the Neurrator paper's protocol.

Sources:

- *Neurrator paper* (``shared/papers/neurrator-paper.txt``), appendix A.6, Tables A1–A3, on
  real Allen sessions with CLIP ViT-L/14-336 targets, a LLaVA-1.5-7B narrator and BLIP-2
  reference captions. Table A1 cells are mean ± std over test frames; its "Mean" column is
  the mean of the three regimes. Table A1's hold-out regimes are the paper's (leaky)
  definitions: see :mod:`neurrator.preprocess.splits`.
- *CEBRA* (Schneider, Lee & Mathis, Nature 2023), Allen Neuropixels natural_movie_one frame
  identification within 1 s, V1 pseudo-mouse, repeats 1–9 train / repeat 10 test, 330 ms
  windows: another protocol, another split, another readout.
"""

from __future__ import annotations

from dataclasses import dataclass

NEURRATOR = "Neurrator paper"
CEBRA = "CEBRA (Schneider et al. 2023)"

#: Protocol labels: which way of measuring a number belongs to.
PROTOCOLS = {
    NEURRATOR: "Neurrator paper, appendix A.6 (CLIP ViT-L/14-336 targets, LLaVA-1.5-7B narrator, BLIP-2 references, "
               "real Allen sessions, the paper's hold-out regimes)",
    CEBRA: "CEBRA's own Allen protocol (natural_movie_one, V1 pseudo-mouse, repeats 1-9 train / 10 test, "
           "frame identified within 1 s by kNN on the CEBRA embedding)",
}


@dataclass(frozen=True)
class PaperNumber:
    """One published number.

    Attributes
    ----------
    value : as a fraction for percentages (38.8 % → 0.388), else as printed.
    table : ``"A1"``, ``"A2"``, ``"A3"``, or the peer result's name.
    row : the table's row label, as printed.
    column : our key of the column (``"sparse_random"``, ``"r10"``, ``"mean_r1"``, ...).
    protocol : :data:`NEURRATOR` or :data:`CEBRA`.
    std : the ± printed beside the value, if any.
    kind : ``"score"`` (a cosine or ratio), ``"fraction"`` (print as %), ``"rank"`` or ``"count"``.
    """

    value: float
    table: str
    row: str
    column: str
    protocol: str = NEURRATOR
    std: float | None = None
    kind: str = "score"

    @property
    def source(self) -> str:
        return f"{self.protocol}, Table {self.table}, row {self.row!r}, column {self.column!r}" \
            if self.protocol == NEURRATOR else f"{self.protocol}, {self.table}, {self.row}"

    def to_dict(self) -> dict:
        return {"value": self.value, "std": self.std, "kind": self.kind, "source": self.source,
                "table": self.table, "row": self.row, "column": self.column, "protocol": self.protocol}


def _a1(row: str, sr: tuple[float, float], cm: tuple[float, float], fo: tuple[float, float], mean: float):
    return [
        PaperNumber(sr[0], "A1", row, "sparse_random", std=sr[1]),
        PaperNumber(cm[0], "A1", row, "contiguous_middle", std=cm[1]),
        PaperNumber(fo[0], "A1", row, "front_only", std=fo[1]),
        PaperNumber(mean, "A1", row, "mean"),
    ]


_NUMBERS: list[PaperNumber] = [
    # Table A1: SBERT cosine (narration vs BLIP-2 reference), mean ± std, by hold-out regime.
    *_a1("Neurrator (ours)", (0.426, 0.21), (0.367, 0.18), (0.170, 0.09), 0.32),
    *_a1("CEBRA + LLaVA", (0.063, 0.05), (0.069, 0.05), (0.069, 0.05), 0.07),
    *_a1("Ridge + LLaVA", (0.047, 0.05), (0.061, 0.05), (0.076, 0.05), 0.06),
    *_a1("Random-sentence floor", (0.007, 0.08), (0.020, 0.08), (0.062, 0.07), 0.03),
    # Table A2: embedding level (k of the kNN purity is not printed in the paper).
    PaperNumber(0.890, "A2", "Neurrator (ours)", "cka"),
    PaperNumber(0.174, "A2", "Neurrator (ours)", "knn_purity"),
    PaperNumber(0.388, "A2", "Neurrator (ours)", "r10", kind="fraction"),
    PaperNumber(14, "A2", "Neurrator (ours)", "median_rank", kind="rank"),
    PaperNumber(0.016, "A2", "CEBRA (w/ our training)", "cka"),
    PaperNumber(0.030, "A2", "CEBRA (w/ our training)", "knn_purity"),
    PaperNumber(0.013, "A2", "CEBRA (w/ our training)", "r10", kind="fraction"),
    PaperNumber(436, "A2", "CEBRA (w/ our training)", "median_rank", kind="rank"),
    PaperNumber(0.094, "A2", "CEBRA (naive)", "cka"),
    PaperNumber(0.147, "A2", "CEBRA (naive)", "knn_purity"),
    PaperNumber(0.758, "A2", "MLP-Patches", "cka"),
    PaperNumber(0.162, "A2", "MLP-Patches", "knn_purity"),
    PaperNumber(0.210, "A2", "MLP-Patches", "r10", kind="fraction"),
    PaperNumber(35, "A2", "MLP-Patches", "median_rank", kind="rank"),
    # Table A3: frame R@1, mean over four pilot sessions (and the parameter counts printed).
    PaperNumber(0.007, "A3", "Ridge", "mean_r1", kind="fraction"),
    PaperNumber(1.08e6, "A3", "Ridge", "params", kind="count"),
    PaperNumber(0.008, "A3", "PCA+KNN", "mean_r1", kind="fraction"),
    PaperNumber(0.27e6, "A3", "PCA+KNN", "params", kind="count"),
    PaperNumber(0.052, "A3", "CEBRA-128 + KNN", "mean_r1", kind="fraction"),
    PaperNumber(0.74e6, "A3", "CEBRA-128 + KNN", "params", kind="count"),
    PaperNumber(0.076, "A3", "CEBRA-256 + KNN", "mean_r1", kind="fraction"),
    PaperNumber(0.81e6, "A3", "CEBRA-256 + KNN", "params", kind="count"),
    PaperNumber(0.103, "A3", "CEBRA-512 + KNN", "mean_r1", kind="fraction"),
    PaperNumber(0.89e6, "A3", "CEBRA-512 + KNN", "params", kind="count"),
    PaperNumber(0.0011, "A3", "Chance", "mean_r1", kind="fraction"),
    # Main text: scaling (SBERT for the largest pools, no saturation).
    PaperNumber(0.45, "Fig. 4", "largest pools", "sbert"),
    # CEBRA's own protocol (not the Neurrator paper's): frame identification within 1 s.
    PaperNumber(0.94, "Allen frame identification", "CEBRA, 200 V1 neurons", "within_1s", CEBRA, kind="fraction"),
    PaperNumber(0.99, "Allen frame identification", "CEBRA, 1000 V1 neurons", "within_1s", CEBRA, kind="fraction"),
    PaperNumber(0.82, "Allen frame identification", "kNN baseline, 200 V1 neurons", "within_1s", CEBRA, kind="fraction"),
    PaperNumber(0.92, "Allen frame identification", "kNN baseline, 1000 V1 neurons", "within_1s", CEBRA,
                kind="fraction"),
]

#: Our method families → the paper's row of each table (``None``: the paper has no such row).
#: Keys are the family names of :mod:`neurrator.evaluate.methods` (``"neurrator"``, ``"ridge"``, ...).
ROW_OF_METHOD: dict[str, dict[str, str]] = {
    "neurrator": {"A1": "Neurrator (ours)", "A2": "Neurrator (ours)"},
    "ridge": {"A1": "Ridge + LLaVA", "A3": "Ridge"},
    "mlp": {"A2": "MLP-Patches"},
    "pca_knn": {"A3": "PCA+KNN"},
    "cebra": {"A1": "CEBRA + LLaVA", "A2": "CEBRA (w/ our training)"},
    "cebra-128": {"A3": "CEBRA-128 + KNN"},
    "cebra-256": {"A3": "CEBRA-256 + KNN"},
    "cebra-512": {"A3": "CEBRA-512 + KNN"},
    "floor": {"A1": "Random-sentence floor"},
    "chance": {"A3": "Chance"},
}


def numbers() -> list[PaperNumber]:
    """Every published number the project uses."""
    return list(_NUMBERS)


def lookup(table: str, row: str, column: str) -> PaperNumber | None:
    """The number at ``table`` / ``row`` / ``column``, or ``None`` if the source has none."""
    for n in _NUMBERS:
        if n.table == table and n.row == row and n.column == column:
            return n
    return None


def for_method(family: str, table: str, column: str) -> PaperNumber | None:
    """The paper's number for our method ``family`` (e.g. ``"cebra-512"``) in ``table``/``column``."""
    row = ROW_OF_METHOD.get(family, {}).get(table)
    if row is None and "-" in family:  # "cebra-512" falls back to "cebra" for A1/A2
        row = ROW_OF_METHOD.get(family.split("-")[0], {}).get(table)
    return lookup(table, row, column) if row else None


def table(table: str) -> dict[str, dict[str, PaperNumber]]:
    """``row → column → number`` of one table (Neurrator-paper protocol only for A1–A3)."""
    out: dict[str, dict[str, PaperNumber]] = {}
    for n in _NUMBERS:
        if n.table == table:
            out.setdefault(n.row, {})[n.column] = n
    return out


def peer_results(protocol: str = CEBRA) -> list[PaperNumber]:
    """Numbers measured under a peer's own protocol (never to be shown as the Neurrator paper's)."""
    return [n for n in _NUMBERS if n.protocol == protocol]


def to_dict() -> dict:
    """All numbers as JSON-ready dicts, with the protocols' descriptions."""
    return {"protocols": PROTOCOLS, "numbers": [n.to_dict() for n in _NUMBERS]}
