"""One home for the project's statistics: intervals, block bootstrap, paired tests, Holm, chance.

Test windows are not independent samples: the repeats of one frame share the stimulus, and
neighbouring frames of one shot share most of it. Every interval and test here can therefore
work on **blocks** (:func:`block_ids`): the frame's shot when shots are known, else contiguous
``block_seconds`` runs of frames of a movie, else (image sets) the image. A block bootstrap
resamples whole blocks; a paired test compares block means.

=========================  ==============================================================
:class:`Interval`          a mean with its confidence interval, level, block count, method
:func:`block_ids`          (n,) block id per window
:func:`bootstrap_ci`       percentile bootstrap of the mean, i.i.d. values
:func:`block_bootstrap_ci` percentile bootstrap of the mean, resampling whole blocks
:func:`t_interval`         Student-t interval of a mean (a few independent draws)
:func:`paired_test`        Wilcoxon signed-rank on block means + rank-biserial effect size
:func:`holm`               Holm–Bonferroni adjusted p-values (within one table)
:func:`permutation_chance` the chance level of a paired statistic: permute the pairing
=========================  ==============================================================

Everything else in the project (evaluate, benchmark, analysis, sweeps) imports these; there is
no other bootstrap or test code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

#: Names of the interval methods, as written into every result.
BOOTSTRAP = "percentile bootstrap"
BLOCK_BOOTSTRAP = "percentile block bootstrap"
STUDENT_T = "student-t"


@dataclass(frozen=True)
class Interval:
    """A mean with its confidence interval.

    Attributes
    ----------
    mean : the point estimate (mean of the values, every window weighted equally).
    low, high : the interval's bounds; equal to ``mean`` when it is degenerate.
    level : confidence level, e.g. 0.95.
    n_blocks : independent units the interval rests on (blocks, draws or values).
    method : how it was computed, e.g. ``"percentile block bootstrap"``.
    """

    mean: float
    low: float
    high: float
    level: float
    n_blocks: int
    method: str

    @property
    def width(self) -> float:
        return float(self.high - self.low)

    @property
    def degenerate(self) -> bool:
        """True when the interval has (numerically) zero width: it carries no uncertainty
        estimate, so it must never count as evidence (e.g. of a scaling crossing)."""
        return not (self.width > 1e-9 * max(1.0, abs(self.mean)))

    def above(self, value: float) -> bool:
        """The whole interval lies above ``value``, and the interval is not degenerate."""
        return (not self.degenerate) and self.low > value

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Interval:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def _finite(values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]


def _point(values: np.ndarray, level: float, n: int, method: str) -> Interval:
    m = float(values.mean()) if len(values) else float("nan")
    return Interval(m, m, m, level, n, method)


# ---- blocks ------------------------------------------------------------------------------------


def block_ids(
    frames: np.ndarray,
    *,
    shot_of_frame: np.ndarray | None = None,
    frame_rate: float | None = None,
    block_seconds: float = 1.0,
) -> np.ndarray:
    """(n,) int64 block id of each window, from its stimulus frame.

    - shots known (``shot_of_frame``: (n_frames,) shot id per frame): the frame's shot;
    - else a movie (``frame_rate`` in Hz): contiguous blocks of ``round(block_seconds ×
      frame_rate)`` frames (frame // block length);
    - else (an image set): the image itself.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if shot_of_frame is not None:
        return np.asarray(shot_of_frame, dtype=np.int64)[frames]
    if frame_rate:
        return frames // max(1, round(block_seconds * frame_rate))
    return frames.copy()


def block_description(*, shots_known: bool, frame_rate: float | None, block_seconds: float = 1.0) -> str:
    """One line saying what a block is, for table notes."""
    if shots_known:
        return "blocks = shots"
    if frame_rate:
        return f"blocks = contiguous {block_seconds:g} s runs of frames ({max(1, round(block_seconds * frame_rate))} frames)"
    return "blocks = images"


def block_means(values: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (n,) within each block of ``blocks`` (n,) → (n_blocks,), sorted by block id.

    Non-finite values are ignored; a block with none left is dropped.
    """
    values = np.asarray(values, dtype=np.float64)
    blocks = np.asarray(blocks)
    keep = np.isfinite(values)
    ids, inverse = np.unique(blocks[keep], return_inverse=True)
    sums = np.bincount(inverse, weights=values[keep], minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids))
    return sums / counts


# ---- intervals ---------------------------------------------------------------------------------


def bootstrap_ci(values, *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap CI of the mean of i.i.d. ``values`` (``scipy.stats.bootstrap``).

    Non-finite values are dropped. Fewer than two values, or all equal: a degenerate interval.
    """
    v = _finite(values)
    if len(v) < 2 or np.ptp(v) == 0:
        return _point(v, level, len(v), BOOTSTRAP)
    res = stats.bootstrap((v,), np.mean, n_resamples=n_resamples, confidence_level=level,
                          method="percentile", rng=np.random.default_rng(seed))
    return Interval(float(v.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high),
                    level, len(v), BOOTSTRAP)


def block_bootstrap_ci(values, blocks, *, n_resamples: int = 2000, level: float = 0.95, seed: int = 0) -> Interval:
    """Percentile CI of the window mean, resampling whole blocks with replacement.

    Each resample draws ``n_blocks`` blocks and takes the mean over all their windows (blocks of
    different sizes keep their weight), via ``scipy.stats.bootstrap`` on paired (block sum,
    block count) data. One block, or no variation: a degenerate interval.
    """
    values = np.asarray(values, dtype=np.float64).ravel()
    blocks = np.asarray(blocks).ravel()
    if len(values) != len(blocks):
        raise ValueError(f"{len(values)} values but {len(blocks)} block ids")
    keep = np.isfinite(values)
    values, blocks = values[keep], blocks[keep]
    ids, inverse = np.unique(blocks, return_inverse=True)
    if len(ids) < 2 or np.ptp(values) == 0:
        return _point(values, level, len(ids), BLOCK_BOOTSTRAP)
    sums = np.bincount(inverse, weights=values, minlength=len(ids))
    counts = np.bincount(inverse, minlength=len(ids)).astype(np.float64)
    if np.ptp(sums / counts) == 0:
        return _point(values, level, len(ids), BLOCK_BOOTSTRAP)

    def ratio(s, c, axis=-1):
        return s.sum(axis=axis) / c.sum(axis=axis)

    res = stats.bootstrap((sums, counts), ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                          confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    return Interval(float(values.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high),
                    level, len(ids), BLOCK_BOOTSTRAP)


def t_interval(values, *, level: float = 0.95) -> Interval:
    """Student-t interval of the mean of a few independent ``values`` (e.g. random draws)."""
    v = _finite(values)
    if len(v) < 2 or np.ptp(v) == 0:
        return _point(v, level, len(v), STUDENT_T)
    half = float(stats.sem(v) * stats.t.ppf(0.5 + level / 2, len(v) - 1))
    m = float(v.mean())
    return Interval(m, m - half, m + half, level, len(v), STUDENT_T)


# ---- paired tests ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """A two-sided Wilcoxon signed-rank test of ``a`` against ``b`` on block means.

    Attributes
    ----------
    level : ``"block"`` (values averaged within blocks first) or ``"window"`` (no blocks given).
    n_blocks : pairs the test ran on (blocks, or windows at window level).
    n_windows : finite paired windows before averaging.
    mean_difference : mean over windows of ``a − b``.
    statistic, p_value : ``scipy.stats.wilcoxon`` (``nan`` when undefined, e.g. < 2 non-zero pairs).
    rank_biserial : matched-pairs rank-biserial correlation in [-1, 1] (positive: ``a`` larger).
    """

    level: str
    n_blocks: int
    n_windows: int
    mean_difference: float
    statistic: float
    p_value: float
    rank_biserial: float

    def to_dict(self) -> dict:
        return asdict(self)


def paired_test(a, b, blocks=None) -> PairedTest:
    """Wilcoxon signed-rank test of paired ``a`` (n,) and ``b`` (n,), on block means if ``blocks``.

    Pairs with a non-finite side are dropped first. The rank-biserial effect size is
    ``(R+ − R−) / (R+ + R−)`` over the non-zero block differences.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired_test needs equal lengths, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n_windows = len(a)
    mean_diff = float((a - b).mean()) if n_windows else float("nan")
    if blocks is not None:
        blocks = np.asarray(blocks).ravel()[keep]
        d = block_means(a - b, blocks)
        level = "block"
    else:
        d = a - b
        level = "window"
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return PairedTest(level, len(d), n_windows, mean_diff, float("nan"), float("nan"), 0.0)
    ranks = stats.rankdata(np.abs(nonzero))
    rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    if len(nonzero) < 2:
        return PairedTest(level, len(d), n_windows, mean_diff, float("nan"), float("nan"), rank_biserial)
    res = stats.wilcoxon(d, alternative="two-sided")
    return PairedTest(level, len(d), n_windows, mean_diff, float(res.statistic), float(res.pvalue), rank_biserial)


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order; ``nan`` stays ``nan`` and is not counted).

    Apply it to the family of tests of one table.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out


# ---- chance by permutation -------------------------------------------------------------------


@dataclass(frozen=True)
class Chance:
    """The null distribution of a paired statistic under permuted pairing.

    Attributes
    ----------
    value : the ``quantile`` of the null (the chance level to beat; 95th percentile by default).
    quantile : which quantile ``value`` is.
    null_mean : mean of the null.
    n_permutations : permutations drawn.
    method : how the pairing was permuted (``"rows"`` or ``"blocks"``).
    null : (n_permutations,) the null values.
    """

    value: float
    quantile: float
    null_mean: float
    n_permutations: int
    method: str
    null: np.ndarray

    def p_value(self, observed: float) -> float:
        """One-sided permutation p-value of ``observed`` (``(1 + #null ≥ observed) / (1 + n)``)."""
        return float((1 + np.sum(self.null >= observed)) / (1 + len(self.null)))

    def to_dict(self) -> dict:
        return {"value": self.value, "quantile": self.quantile, "null_mean": self.null_mean,
                "n_permutations": self.n_permutations, "method": self.method}


def permutation_chance(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_permutations: int = 200,
    quantile: float = 0.95,
    seed: int = 0,
    blocks: np.ndarray | None = None,
) -> Chance:
    """Chance level of ``statistic(x, y)`` for row-paired ``x`` (n, ...) and ``y`` (n, ...).

    The pairing is broken by permuting the rows of ``y``: row by row, or, with ``blocks`` (n,),
    by putting whole blocks of ``y`` in a random order (each keeps its internal order, so its
    autocorrelation survives) and pairing by position. ``value`` is the ``quantile`` of the
    ``n_permutations`` null values.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"permutation_chance needs paired rows, got {len(x)} and {len(y)}")
    rng = np.random.default_rng(seed)
    if blocks is not None:
        blocks = np.asarray(blocks).ravel()
        ids = np.unique(blocks)
        members = [np.flatnonzero(blocks == b) for b in ids]
    null = np.empty(n_permutations, dtype=np.float64)
    for i in range(n_permutations):
        if blocks is None:
            order = rng.permutation(len(y))
        else:
            order = np.concatenate([members[j] for j in rng.permutation(len(ids))])
        null[i] = statistic(x, y[order])
    finite = null[np.isfinite(null)]
    value = float(np.quantile(finite, quantile)) if len(finite) else math.nan
    return Chance(value, quantile, float(finite.mean()) if len(finite) else math.nan, n_permutations,
                  "blocks" if blocks is not None else "rows", null)
