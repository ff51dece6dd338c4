"""Pairwise narration similarity between populations on the same test windows (paper Fig. 5).

For populations A and B the similarity is the mean over test windows w of
``cos(SBERT(narration_A[w]), SBERT(narration_B[w]))``. The diagonal is each population's
similarity to itself across *different repeats* of the same frame (its reliability); it is NaN
when no frame has two test repeats. The shuffled floor pairs A's window w with B's window π(w)
for random permutations π: what two populations share when they describe unrelated frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from neurrator.analysis.common import EncodeFn, figure_png
from neurrator.analysis.result import AnalysisResult

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig
    from neurrator.analysis.inputs import AnalysisInputs


@dataclass
class SimilarityResult:
    """``matrix`` and ``shuffled`` are (n_pop, n_pop) lists indexed like ``populations``."""

    name: str
    populations: list[str]
    matrix: list[list[float]]
    shuffled: list[list[float]]
    floor: float
    n_windows: int
    population_sizes: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


def narration_similarity(
    narrations: Mapping[str, Sequence[str]],
    encode: EncodeFn,
    frames: np.ndarray,
    *,
    name: str = "",
    n_shuffles: int = 20,
    seed: int = 0,
    population_sizes: Mapping[str, int] | None = None,
) -> SimilarityResult:
    """Similarity matrix and shuffled floor of narration sets.

    Parameters
    ----------
    narrations : population → (n_windows,) sentences, all on the same test windows.
    encode : sentences → (n, d) unit-norm embeddings (SBERT).
    frames : (n_windows,) stimulus frame of each window (used for the diagonal).
    n_shuffles : permutations averaged into the floor.
    """
    pops = list(narrations)
    emb = {p: encode(list(narrations[p])) for p in pops}
    n = len(frames)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(n) for _ in range(n_shuffles)]
    k = len(pops)
    matrix = np.full((k, k), np.nan)
    shuffled = np.full((k, k), np.nan)
    # Pairs of distinct windows showing the same frame (different repeats), for the diagonal.
    same_frame = (frames[:, None] == frames[None, :]) & ~np.eye(n, dtype=bool)
    for i, a in enumerate(pops):
        for j, b in enumerate(pops):
            if i == j:
                if same_frame.any():
                    matrix[i, i] = float((emb[a] @ emb[a].T)[same_frame].mean())
            else:
                matrix[i, j] = float(np.einsum("nd,nd->n", emb[a], emb[b]).mean())
            shuffled[i, j] = float(
                np.mean([np.einsum("nd,nd->n", emb[a], emb[b][p]).mean() for p in perms])
            )
    off = ~np.eye(k, dtype=bool)
    floor = float(np.nanmean(shuffled[off])) if k > 1 else float(shuffled[0, 0])
    return SimilarityResult(
        name=name,
        populations=pops,
        matrix=matrix.tolist(),
        shuffled=shuffled.tolist(),
        floor=floor,
        n_windows=n,
        population_sizes=dict(population_sizes or {}),
    )


def plot_similarity(results: Sequence[SimilarityResult], *, narrator: str = "") -> bytes:
    """Heatmaps side by side on one shared colour scale, the shuffled floor on the colour bar."""
    import matplotlib.pyplot as plt

    values = np.concatenate(
        [np.asarray(r.matrix, dtype=float).ravel() for r in results] + [[r.floor for r in results]]
    )
    vmin, vmax = 0.0, max(0.75, float(np.nanmax(values)))
    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results) + 1, 4.2), squeeze=False)
    image = None
    for ax, r in zip(axes[0], results, strict=True):
        m = np.asarray(r.matrix, dtype=float)
        image = ax.imshow(m, vmin=vmin, vmax=vmax, cmap="viridis")
        labels = [f"{p}\n(n={r.population_sizes.get(p, '?')})" for p in r.populations]
        ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels, fontsize=7)
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(
                    j,
                    i,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if v < (vmin + vmax) / 2 else "black",
                )
        ax.set_title(f"{r.name} (shuffled floor {r.floor:.2f})", fontsize=9)
    cbar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8)
    for r in results:
        cbar.ax.axhline(r.floor, color="red", lw=1)
    cbar.set_label("SBERT cosine between narrations (red: shuffled floor)", fontsize=8)
    fig.suptitle(
        f"Narration similarity on the same test windows (diagonal: across repeats; narrator {narrator})",
        fontsize=9,
    )
    return figure_png(fig)


def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Narration-similarity heatmaps of area pools and cell-type pools on one colour scale."""
    cfg = config.similarity
    results, skipped = [], {}
    for name, specs in (("brain areas", cfg.area_pools), ("cell types", cfg.cell_type_pools)):
        masks, missing = inputs.pools(specs)
        skipped.update(missing)
        if len(masks) < 2:
            continue
        results.append(narration_similarity(
            inputs.population_narrations(masks), inputs.encode, inputs.frames, name=name, n_shuffles=cfg.n_shuffles,
            seed=inputs.seed, population_sizes={k: int(v.sum()) for k, v in masks.items()},
        ))
    narrator = inputs.narrate.name
    summary = {
        "narrator": narrator,
        "n_windows": len(inputs.frames),
        "floors": {r.name: r.floor for r in results},
        "pairs": [
            {"set": r.name, "a": a, "b": b, "similarity": round(r.matrix[i][j], 4),
             "shuffled": round(r.shuffled[i][j], 4)}
            for r in results for i, a in enumerate(r.populations) for j, b in enumerate(r.populations) if i < j
        ],
        "skipped_pools": skipped,
    }
    return AnalysisResult(
        "similarity", summary,
        {"narrator": narrator, "sets": [r.to_dict() for r in results], "skipped_pools": skipped},
        inputs.used(cfg, narrator=narrator),
        figures={"similarity.png": plot_similarity(results, narrator=narrator)} if results else {},
        line="shuffled floors: " + ", ".join(f"{r.name} {r.floor:.3f}" for r in results),
    )
