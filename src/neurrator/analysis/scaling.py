"""Scaling curves: narration fidelity against population size, per anatomical pool (paper Fig. 4).

One trained encoder answers every point through subset queries (absent units masked); nothing
is retrained. For each pool and size N, ``n_draws`` random N-unit subsets are drawn; each draw's
fidelity is the mean over test windows of the SBERT score of its narration and of its R@10.
The crossing point of a pool is the smallest N whose confidence interval of the SBERT gain over
the other-shot pairing (matched − shuffled) lies wholly above 0, the other-shot floor; a
zero-width interval never counts. The random-caption floor is drawn for reference only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from neurrator.analysis.common import NarrateFn, PredictFn, figure_png
from neurrator.analysis.result import AnalysisResult
from neurrator.core.linalg import pool_patches
from neurrator.core.sampling import evenly_spaced
from neurrator.evaluate.embedding import centred_cosine, identify
from neurrator.evaluate.stats import block_bootstrap_ci, block_ids, bootstrap_ci, t_interval

if TYPE_CHECKING:
    from neurrator.analysis.config import AnalysisConfig
    from neurrator.analysis.inputs import AnalysisInputs

#: patches (n, n_patches, dim), sentences (n,) → metric name → per-window values (n,).
FidelityFn = Callable[[torch.Tensor, list[str]], dict[str, np.ndarray]]


@dataclass
class MetricSummary:
    """Mean and CI of one metric at one point; ``draws`` holds each draw's window mean."""

    mean: float
    lo: float
    hi: float
    draws: list[float]


@dataclass
class ScalingPoint:
    """One (pool, size) point. ``size`` is the number of units; ``label`` is ``"all"`` or N."""

    pool: str
    size: int
    label: str
    n_distinct_draws: int
    ci_method: str
    metrics: dict[str, MetricSummary]


@dataclass
class ScalingResult:
    """Everything the scaling figure and the report need (serialised to ``scaling.json``)."""

    points: list[ScalingPoint]
    floors: dict[str, float]
    crossings: dict[str, dict[str, int | None]]
    pool_sizes: dict[str, int]
    n_windows: int
    n_draws: int
    ci_level: float
    narrator: str
    cache: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _draw_masks(
    pool: np.ndarray, size: int, n_draws: int, rng: np.random.Generator
) -> list[np.ndarray]:
    members = np.flatnonzero(pool)
    masks = []
    for _ in range(n_draws):
        mask = np.zeros(len(pool), dtype=bool)
        mask[rng.choice(members, size=size, replace=False)] = True
        masks.append(mask)
    return masks


def crossing_point(points: Sequence[ScalingPoint], metric: str, floor: float, *, tolerance: float = 1e-6) -> int | None:
    """Smallest population size whose CI lies wholly above ``floor`` (``None`` if never).

    A zero-width interval (every draw identical, e.g. a constant narration) carries no
    uncertainty estimate and never counts. ``tolerance`` keeps float round-off (a constant
    narration's gain comes out as ~1e-9, not 0) from counting as a crossing.
    """
    above = [p.size for p in points
             if p.metrics[metric].hi - p.metrics[metric].lo > tolerance and p.metrics[metric].lo > floor + tolerance]
    return min(above) if above else None


def scaling_curves(
    predict: PredictFn,
    narrate: NarrateFn,
    fidelity: FidelityFn,
    pools: Mapping[str, np.ndarray],
    *,
    sizes: Sequence[int | str],
    floors: Mapping[str, float],
    n_draws: int = 5,
    ci_level: float = 0.95,
    seed: int = 0,
    narrator_name: str = "",
    max_masks_per_call: int = 8,
    predict_many: Callable[[np.ndarray], torch.Tensor] | None = None,
    blocks: np.ndarray | None = None,
    crossing_metrics: Sequence[str] | None = None,
) -> ScalingResult:
    """Fidelity against population size for every pool.

    Parameters
    ----------
    predict : units mask (n_units,) bool → predicted patches (n_windows, n_patches, dim).
    narrate : patches → sentences; wrap it in :class:`CachedNarrator` so identical inputs
        (every draw of ``"all"``, repeated subsets of small pools) are narrated once.
    fidelity : patches and sentences → metric name → per-window values, e.g. ``{"sbert": (n,),
        "r_at_10": (n,)}``.
    pools : pool name → (n_units,) bool membership mask.
    sizes : population sizes; ``"all"`` is the whole pool. Sizes ≥ the pool size are skipped
        (the pool itself is the ``"all"`` point).
    floors : metric name → chance level (random-caption SBERT floor, R@10 chance).
    n_draws : random subsets per point.
    ci_level : confidence level. Across draws a Student-t interval; when every draw is the same
        subset (``"all"``) the interval is a bootstrap over test windows.
    max_masks_per_call : subsets whose windows are narrated in one narrator call (bounds memory:
        this many × n_windows predicted patch tensors are held at once).
    predict_many : optional masks (m, n_units) → (m, n_windows, n_patches, dim); when given,
        each chunk of subsets is one encoder batch instead of one call per subset.
    blocks : (n_windows,) block id per test window (:func:`neurrator.evaluate.stats.block_ids`);
        a single-subset point's interval then resamples whole blocks.
    crossing_metrics : metrics whose crossing point is reported (default: every floor's).

    Returns
    -------
    ScalingResult
    """
    rng = np.random.default_rng(seed)
    predictions = 0
    points: list[ScalingPoint] = []
    n_windows = 0
    for pool_name, pool in pools.items():
        pool = np.asarray(pool, dtype=bool)
        n_pool = int(pool.sum())
        if n_pool == 0:
            continue
        wanted = sorted(
            {n_pool if s == "all" else int(s) for s in sizes if s == "all" or int(s) < n_pool}
        )
        draws = {size: _draw_masks(pool, size, n_draws, rng) for size in wanted}
        # Identical subsets (every draw of "all", small pools) are predicted and scored once.
        distinct: dict[bytes, np.ndarray] = {}
        for masks in draws.values():
            for mask in masks:
                distinct.setdefault(np.packbits(mask).tobytes(), mask)
        scores: dict[bytes, dict[str, np.ndarray]] = {}
        keys = list(distinct)
        # Narrate many subsets per call: narrators have a per-call cost (e.g. normalising the
        # caption bank) that one call per subset would pay hundreds of times.
        for start in range(0, len(keys), max_masks_per_call):
            chunk = keys[start : start + max_masks_per_call]
            if predict_many is not None:  # one encoder batch for the whole chunk of subsets
                patches = list(predict_many(np.stack([distinct[k] for k in chunk])))
            else:
                patches = [predict(distinct[k]) for k in chunk]
            predictions += len(chunk)
            sentences = narrate(torch.cat(patches))
            n_windows = len(patches[0])
            for i, (k, p) in enumerate(zip(chunk, patches, strict=True)):
                said = sentences[i * n_windows : (i + 1) * n_windows]
                scores[k] = {
                    m: np.asarray(v, dtype=np.float64) for m, v in fidelity(p, said).items()
                }
        for size, masks in draws.items():
            mask_keys = [np.packbits(m).tobytes() for m in masks]
            n_distinct = len(set(mask_keys))
            summaries = {}
            for metric in scores[mask_keys[0]]:
                values = [scores[k][metric] for k in mask_keys]
                draw_means = [float(v.mean()) for v in values]
                if n_distinct > 1:
                    ci = t_interval(draw_means, level=ci_level)
                elif blocks is not None:
                    ci = block_bootstrap_ci(values[0], blocks, level=ci_level, seed=seed)
                else:
                    ci = bootstrap_ci(values[0], level=ci_level, seed=seed)
                summaries[metric] = MetricSummary(ci.mean, ci.low, ci.high, draw_means)
            ci_method = (
                f"student-t over {len(masks)} draws"
                if n_distinct > 1
                else f"{'block ' if blocks is not None else ''}bootstrap over test windows (single distinct subset)"
            )
            label = "all" if size == n_pool else str(size)
            points.append(ScalingPoint(pool_name, size, label, n_distinct, ci_method, summaries))
    crossings = {
        pool_name: {
            m: crossing_point([p for p in points if p.pool == pool_name], m, f)
            for m, f in floors.items()
            if crossing_metrics is None or m in crossing_metrics
        }
        for pool_name in pools
        if any(p.pool == pool_name for p in points)
    }
    return ScalingResult(
        points=points,
        floors=dict(floors),
        crossings=crossings,
        pool_sizes={k: int(np.asarray(v, dtype=bool).sum()) for k, v in pools.items()},
        n_windows=n_windows,
        n_draws=n_draws,
        ci_level=ci_level,
        narrator=narrator_name,
        cache={"encoder_calls": predictions},
    )


METRIC_LABELS = {
    "sbert": "SBERT cosine to reference",
    "r_at_10": "R@10 (true frame in top 10)",
    "sbert_gain": "SBERT matched − shuffled pairing",
}
FLOOR_LABELS = {
    "sbert": "random-caption floor",
    "r_at_10": "chance",
    "sbert_gain": "no frame-specific content",
}


def plot_scaling(result: ScalingResult, *, title: str = "") -> bytes:
    """One panel per metric: mean ± CI against N on a log axis, with the floor dashed."""
    import matplotlib.pyplot as plt

    metrics = list(result.floors)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 4.0), squeeze=False)
    pools = list(dict.fromkeys(p.pool for p in result.points))
    colours = plt.get_cmap("tab10")
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, pool in enumerate(pools):
            pts = [p for p in result.points if p.pool == pool]
            x = np.array([p.size for p in pts])
            mean = np.array([p.metrics[metric].mean for p in pts])
            lo = np.array([p.metrics[metric].lo for p in pts])
            hi = np.array([p.metrics[metric].hi for p in pts])
            cross = result.crossings.get(pool, {}).get(metric)
            label = f"{pool} (n={result.pool_sizes[pool]}, cross {cross if cross else '—'})"
            ax.plot(x, mean, marker="o", ms=3.5, color=colours(i), label=label)
            ax.fill_between(x, lo, hi, color=colours(i), alpha=0.18, linewidth=0)
        ax.axhline(
            result.floors[metric],
            ls="--",
            color="0.3",
            lw=1,
            label=FLOOR_LABELS.get(metric, "floor"),
        )
        ax.set_xscale("log")
        ax.set_xlabel("neurons in the encoder input (N)")
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.grid(alpha=0.3, which="both", lw=0.5)
        ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(
        title
        or f"Scaling: mean ± {int(result.ci_level * 100)} % CI over {result.n_draws} draws "
        f"({result.n_windows} test windows, narrator {result.narrator})",
        fontsize=9,
    )
    fig.tight_layout()
    return figure_png(fig)


# ---- the scaling analysis -----------------------------------------------------------------------
def shuffled_partners(frames: np.ndarray, shot_of_frame: np.ndarray | None, seed: int = 0) -> np.ndarray:
    """A permutation pairing each window with a window of another shot (of another frame if
    shots are unknown): the shuffled control of the scaling curves.

    Being a permutation, the partners' frames are the windows' own frames reordered, so a
    constant narration scores exactly the same matched and shuffled: its gain is 0. Windows are
    sorted by shot (randomly within a shot) and shifted by the largest shot's size, which lands
    every window in another shot whenever no shot holds more than half of them.
    """
    rng = np.random.default_rng(seed)
    groups = np.asarray(shot_of_frame)[frames] if shot_of_frame is not None else np.asarray(frames)
    if len(np.unique(groups)) < 2:
        groups = np.asarray(frames)
    order = np.lexsort((rng.random(len(groups)), groups))
    shift = min(int(np.bincount(np.unique(groups, return_inverse=True)[1]).max()), len(groups) // 2)
    partner = np.empty(len(groups), dtype=np.int64)
    partner[order] = order[(np.arange(len(order)) + max(shift, 1)) % len(order)]
    return partner


def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Fidelity (SBERT, R@10, SBERT gain over a shuffled pairing) against population size per pool."""
    cfg = config.scaling
    sub = inputs.subset(evenly_spaced(len(inputs.frames), cfg.max_windows))
    masks, skipped = sub.pools(cfg.pools)
    pooled_targets = pool_patches(inputs.frame_targets)
    n_candidates = len(pooled_targets)
    candidates = np.arange(n_candidates)
    # Several cross-shot permutations, averaged, so the null's own pairing noise stays small.
    partners = [shuffled_partners(sub.frames, inputs.shot_of_frame, seed=inputs.seed + i) for i in range(cfg.n_shuffles)]

    def fidelity(patches: torch.Tensor, sentences: list[str]) -> dict[str, np.ndarray]:
        sims = centred_cosine(patches.float().mean(1).numpy(), pooled_targets, pooled_targets.mean(0))
        ranks = identify(sims, sub.frames, candidates).rank
        matched = sub.reference_score(sentences, sub.frames)
        shuffled = np.mean([sub.reference_score(sentences, sub.frames[p]) for p in partners], axis=0)
        return {"sbert": matched, "r_at_10": (ranks <= 10).astype(np.float64), "sbert_gain": matched - shuffled}

    narrate = sub.narrate_fast
    result = scaling_curves(
        sub.predict, narrate, fidelity, masks, sizes=cfg.sizes, n_draws=cfg.n_draws, ci_level=cfg.ci_level,
        floors={"sbert": inputs.random_caption_floor, "r_at_10": min(10, n_candidates) / n_candidates,
                "sbert_gain": 0.0},
        seed=inputs.seed, narrator_name=narrate.name, predict_many=sub.predict_many,
        max_masks_per_call=max(1, inputs.narrate_batch_windows // max(len(sub.frames), 1)),
        blocks=block_ids(sub.frames, shot_of_frame=inputs.shot_of_frame, frame_rate=inputs.frame_rate),
        # A crossing is counted against the other-shot floor (SBERT gain over the shuffled pairing
        # > 0) and R@10 chance; the random-caption floor is drawn for reference only.
        crossing_metrics=("sbert_gain", "r_at_10"),
    )
    result.cache.update({"narrations": narrate.calls, "narration_cache_hits": narrate.hits})

    def cell(p: ScalingPoint, metric: str) -> dict:
        m = p.metrics[metric]
        return {metric: round(m.mean, 4), f"{metric}_ci": f"[{m.lo:.3f}, {m.hi:.3f}]"}

    summary = {
        "narrator": narrate.name,
        "n_windows": result.n_windows,
        "n_draws": result.n_draws,
        "ci_level": result.ci_level,
        "sbert_floor": result.floors["sbert"],
        "r_at_10_chance": result.floors["r_at_10"],
        "crossing_points": {pool: {"pool_size": result.pool_sizes[pool], **c} for pool, c in result.crossings.items()},
        "points": [{"pool": p.pool, "N": p.label, **{k: v for metric in ("sbert", "r_at_10", "sbert_gain")
                                                     for k, v in cell(p, metric).items()}}
                   for p in result.points],
        "skipped_pools": skipped,
    }
    crossings = ", ".join(f"{p} {c['sbert_gain'] or '—'}" for p, c in result.crossings.items())
    return AnalysisResult(
        "scaling", summary, {**result.to_dict(), "skipped_pools": skipped},
        inputs.used(cfg, narrator=narrate.name, n_windows=len(sub.frames)),
        figures={"scaling.png": plot_scaling(result)},
        line=f"crossing N (SBERT above the other-shot floor): {crossings}",
    )
