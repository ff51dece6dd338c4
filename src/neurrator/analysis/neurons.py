"""Single-neuron neurration: say in words what one unit contributes.

For each unit u, over a fixed set of test windows:

- **solo query**: the encoder sees only u; its narration (most frequent sentence) and, when a
  scorer is given, its SBERT fidelity;
- **leave-one-out**: the encoder sees every unit but u; the shift ``Δ = P_all − P_without_u`` of
  the predicted patches (its size relative to ``P_all``) and how often the narration changes;
- **description**: the SAE features whose decoder directions align best with the patch-mean
  shift, and the caption-bank images whose (centred) features lie nearest along it.

Leave-one-out queries are batched: one encoder call answers ``units_per_batch`` units at once
(a per-sample unit mask), so every unit of a session is affordable on CPU.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from neurrator.analysis.common import NarrateFn, figure_png
from neurrator.analysis.result import AnalysisResult
from neurrator.core.linalg import pool_patches
from neurrator.core.sampling import evenly_spaced
from neurrator.narrate.bank import CaptionBank

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig
    from neurrator.analysis.inputs import AnalysisInputs

#: masks (m, n_units) bool → predicted patches (m, n_windows, n_patches, dim).
PredictManyFn = Callable[[np.ndarray], torch.Tensor]
#: sentences (n,), frames (n,) → per-window fidelity (n,) against those frames' references.
ScoreFn = Callable[[list[str], np.ndarray], np.ndarray]


def _centred_unit(pooled: np.ndarray) -> np.ndarray:
    """(n, dim) features centred on their mean, rows scaled to unit norm."""
    centred = pooled - pooled.mean(0)
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


def _neighbours(bank: CaptionBank, centred: np.ndarray, direction: np.ndarray, n: int) -> list[dict]:
    """Bank entries whose centred pooled feature (``centred``, (n_entries, dim)) has the highest
    cosine with ``direction`` (dim,); ``image`` is the entry's index in its source (``bank.frames``)."""
    sims = centred @ (direction / max(float(np.linalg.norm(direction)), 1e-12))
    order = np.argsort(-sims, kind="stable")[:n]
    return [{"image": int(bank.frames[i]), "caption": bank.texts[i], "cosine": float(sims[i])} for i in order]


@dataclass
class NeuronNarration:
    unit_id: int
    area: str | None
    cell_type: str | None
    solo_narration: str
    solo_narration_share: float
    solo_fidelity: float | None
    loo_shift: float
    loo_changed_fraction: float
    example: dict
    features: list[dict] = field(default_factory=list)
    neighbours: list[dict] = field(default_factory=list)


@dataclass
class NeuronsResult:
    units: list[NeuronNarration]
    n_windows: int
    n_narrated_windows: int
    full_fidelity: float | None
    narrator: str
    units_per_second: float
    seconds: float
    description_method: str

    def to_dict(self) -> dict:
        return asdict(self)


def _text_or_none(row, column: str) -> str | None:
    """A units-table cell as text; ``None`` for a missing row, column, None, NaN or ''."""
    value = None if row is None else row.get(column)
    return (
        None
        if value is None or value == "" or (isinstance(value, float) and np.isnan(value))
        else str(value)
    )


def _mode(sentences: Sequence[str]) -> tuple[str, float]:
    sentence, count = Counter(sentences).most_common(1)[0]
    return sentence, count / len(sentences)


def neurrate_units(
    positions: Sequence[int],
    predict_many: PredictManyFn,
    narrate: NarrateFn,
    n_units: int,
    *,
    units_table=None,
    frames: np.ndarray,
    score: ScoreFn | None = None,
    decoder_directions: np.ndarray | None = None,
    feature_labels: Callable[[int], str] | None = None,
    caption_bank: CaptionBank | None = None,
    units_per_batch: int = 8,
    narrated_windows: int | None = None,
    n_features: int = 3,
    n_neighbours: int = 3,
    narrator_name: str = "",
) -> NeuronsResult:
    """Solo query, leave-one-out shift and description of each unit at ``positions``.

    Parameters
    ----------
    positions : column indices (into the encoder's units) of the units to neurrate.
    predict_many : masks (m, n_units) → patches (m, n_windows, n_patches, dim).
    narrate : patches → sentences (wrap in :class:`CachedNarrator`).
    n_units : number of encoder input units.
    units_table : the units DataFrame (for area and cell type), rows aligned with the columns.
    frames : (n_windows,) frame of each window (for the example).
    score : narration fidelity per window, optional.
    decoder_directions : (d_sae, dim) SAE decoder rows, for the feature description.
    feature_labels : feature index → its label.
    caption_bank : captioned images for the neighbour description (e.g. the SAE corpus).
    units_per_batch : units per ``predict_many`` and narrator call.
    narrated_windows : narrate solo and leave-one-out predictions on this many evenly spaced
        windows only (narration dominates the cost); the patch shift uses every window.
    """
    t0 = time.perf_counter()
    everyone = np.ones((1, n_units), dtype=bool)
    p_all = predict_many(everyone)[0].float()  # (n_windows, n_patches, dim)
    n_windows = p_all.shape[0]
    told = evenly_spaced(n_windows, narrated_windows or 0)  # windows that get narrated
    n_told = len(told)
    told_frames = np.asarray(frames)[told]
    narr_all = narrate(p_all[told])
    full_fidelity = float(np.mean(score(narr_all, told_frames))) if score else None
    all_norm = float(p_all.norm(dim=-1).mean())
    centred = _centred_unit(pool_patches(caption_bank.patches)) if caption_bank is not None else None
    results: list[NeuronNarration] = []
    positions = [int(p) for p in positions]
    for start in range(0, len(positions), units_per_batch):
        chunk = positions[start : start + units_per_batch]
        m = len(chunk)
        masks = np.zeros((2 * m, n_units), dtype=bool)
        masks[np.arange(m), chunk] = True  # solo
        masks[m:] = True
        masks[m + np.arange(m), chunk] = False  # leave-one-out
        out = predict_many(masks).float()
        said = narrate(
            out[:, told].reshape(-1, *out.shape[2:])
        )  # one call: narrators have a per-call cost
        solo_narr, loo_narr = said[: m * n_told], said[m * n_told :]
        for j, pos in enumerate(chunk):
            solo = solo_narr[j * n_told : (j + 1) * n_told]
            loo = loo_narr[j * n_told : (j + 1) * n_told]
            delta = p_all - out[m + j]  # what the unit adds, (n_windows, n_patches, dim)
            pooled_shift = delta.mean(dim=(0, 1)).numpy()
            changed = np.array([a != b for a, b in zip(narr_all, loo, strict=True)])
            example_w = int(np.argmax(changed)) if changed.any() else 0
            row = units_table.iloc[pos] if units_table is not None else None
            sentence, share = _mode(solo)
            features = []
            if decoder_directions is not None and np.linalg.norm(pooled_shift) > 0:
                align = decoder_directions @ pooled_shift
                for f in np.argsort(-align, kind="stable")[:n_features]:
                    features.append(
                        {
                            "feature": int(f),
                            "alignment": float(align[f]),
                            "label": feature_labels(int(f)) if feature_labels else "",
                        }
                    )
            results.append(
                NeuronNarration(
                    unit_id=int(units_table.index[pos]) if units_table is not None else pos,
                    area=_text_or_none(row, "area"),
                    cell_type=_text_or_none(row, "cell_type"),
                    solo_narration=sentence,
                    solo_narration_share=share,
                    solo_fidelity=float(np.mean(score(solo, told_frames))) if score else None,
                    loo_shift=float(delta.norm(dim=-1).mean()) / max(all_norm, 1e-12),
                    loo_changed_fraction=float(changed.mean()),
                    example={
                        "frame": int(told_frames[example_w]),
                        "all": narr_all[example_w],
                        "without": loo[example_w],
                        "solo": solo[example_w],
                    },
                    features=features,
                    neighbours=_neighbours(caption_bank, centred, pooled_shift, n_neighbours)
                    if caption_bank is not None and np.linalg.norm(pooled_shift) > 0
                    else [],
                )
            )
    seconds = time.perf_counter() - t0
    return NeuronsResult(
        units=results,
        n_windows=int(n_windows),
        n_narrated_windows=int(n_told),
        full_fidelity=full_fidelity,
        narrator=narrator_name,
        units_per_second=len(results) / max(seconds, 1e-9),
        seconds=seconds,
        description_method="SAE decoder rows and caption-bank images aligned with the patch-mean leave-one-out shift",
    )


def plot_neurons(result: NeuronsResult) -> bytes:
    """Leave-one-out shift against solo fidelity (or narration change), coloured by area."""
    import matplotlib.pyplot as plt

    units = result.units
    areas = sorted({u.area or "?" for u in units})
    colours = plt.get_cmap("tab20")
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, area in enumerate(areas):
        sel = [u for u in units if (u.area or "?") == area]
        y = [
            u.solo_fidelity if u.solo_fidelity is not None else u.solo_narration_share for u in sel
        ]
        axes[0].scatter([u.loo_shift for u in sel], y, s=14, color=colours(i % 20), label=area)
        axes[1].scatter(
            [u.loo_shift for u in sel],
            [u.loo_changed_fraction for u in sel],
            s=14,
            color=colours(i % 20),
        )
    axes[0].set_xlabel("leave-one-out patch shift (relative)")
    axes[0].set_ylabel(
        "solo narration SBERT"
        if units and units[0].solo_fidelity is not None
        else "solo narration share"
    )
    if result.full_fidelity is not None:
        axes[0].axhline(result.full_fidelity, ls="--", color="0.3", lw=1, label="all units")
    axes[1].set_xlabel("leave-one-out patch shift (relative)")
    axes[1].set_ylabel("fraction of windows whose narration changes")
    axes[0].legend(fontsize=6, ncol=2)
    for ax in axes:
        ax.grid(alpha=0.3, lw=0.5)
    fig.suptitle(
        f"Single-neuron neurration: {len(units)} units, {result.n_windows} windows, "
        f"{result.units_per_second:.1f} units/s (narrator {result.narrator})",
        fontsize=9,
    )
    fig.tight_layout()
    return figure_png(fig)


# ---- the neurons analysis -----------------------------------------------------------------------
def choose_units(units: pd.DataFrame, how: int | str, seed: int = 0) -> np.ndarray:
    """Positions of the units to neurrate: all, or ``how`` drawn round-robin over areas and,
    within an area, over its cell types (untagged units are one more type), so that a small
    sample still covers every area and every optotagged type."""
    if how == "all" or int(how) >= len(units):
        return np.arange(len(units))
    rng = np.random.default_rng(seed)
    area = units["area"].astype(str).to_numpy() if "area" in units else np.full(len(units), "?")
    cell = units["cell_type"].to_numpy() if "cell_type" in units else np.full(len(units), None)
    cell = np.array([c if isinstance(c, str) and c else "" for c in cell])
    queues = {
        a: [rng.permutation(np.flatnonzero((area == a) & (cell == c))).tolist()
            for c in sorted(set(cell[area == a]), key=lambda c: (c == "", c))]
        for a in np.unique(area)
    }
    turn = dict.fromkeys(queues, 0)
    order: list[int] = []
    while len(order) < int(how):
        for a, subgroups in queues.items():
            live = [q for q in subgroups if q]
            if live and len(order) < int(how):
                order.append(live[turn[a] % len(live)].pop())
                turn[a] += 1
    return np.sort(np.array(order, dtype=np.int64))


def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Solo query, leave-one-out shift and description of single units."""
    cfg = config.neurons
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    corpus, concepts = inputs.corpus, inputs.concepts
    bank = None
    if corpus is not None and any(corpus.captions):
        bank = CaptionBank.from_captioned(corpus.patches, corpus.captions, rule=corpus.description)
    result = neurrate_units(
        choose_units(inputs.units, cfg.units, inputs.seed), sub.predict_many, sub.narrate, sub.n_units,
        units_table=inputs.units, frames=sub.frames, score=sub.reference_score,
        decoder_directions=None if concepts is None else concepts.decoder_directions,
        feature_labels=None if concepts is None else concepts.label,
        caption_bank=bank, units_per_batch=cfg.units_per_batch, narrated_windows=cfg.narrated_windows,
        n_features=cfg.n_features, n_neighbours=cfg.n_neighbours, narrator_name=sub.narrate.name,
    )
    summary = {
        "narrator": result.narrator,
        "n_units": len(result.units),
        "n_windows": result.n_windows,
        "n_narrated_windows": result.n_narrated_windows,
        "units_per_second": round(result.units_per_second, 3),
        "all_units_fidelity": result.full_fidelity,
        "top_units": [
            {"unit_id": u.unit_id, "area": u.area, "cell_type": u.cell_type, "loo_shift": round(u.loo_shift, 4),
             "narration_changed": round(u.loo_changed_fraction, 3), "solo": u.solo_narration,
             "solo_sbert": None if u.solo_fidelity is None else round(u.solo_fidelity, 4),
             "features": "; ".join(f["label"] for f in u.features),
             "neighbours": "; ".join(n["caption"] for n in u.neighbours)}
            for u in sorted(result.units, key=lambda u: -u.loo_shift)[:15]
        ],
    }
    return AnalysisResult(
        "neurons", summary, result.to_dict(),
        inputs.used(cfg, narrator=result.narrator, n_windows=len(sub.frames),
                    concepts=None if concepts is None else "SAE concept dictionary of the corpus",
                    caption_bank=None if bank is None else bank.rule),
        figures={"neurons.png": plot_neurons(result)},
        line=f"{len(result.units)} units at {result.units_per_second:.1f} units/s",
    )
