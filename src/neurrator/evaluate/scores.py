"""Sentence-level scores of narrations, their floors and controls, and honest statistics.

Every test window gets (all SBERT cosines, in [-1, 1]):

- ``matched``: mean cosine between the narration and the true frame's reference captions
  (the **headline** score; with one reference per frame, as in the paper's BLIP-2 setup, it
  is simply that cosine). ``matched_max`` is the best single reference.
- ``shuffled``: the same narration against the references of another test window's frame,
  drawn with a seeded generator from a different shot (a different frame when shots are
  unknown). Paper A.5's "shuffled pairing".
- ``word_salad``: a sentence of a fixed pool of 30 nonsense sentences against the true
  references. Paper A.4's "random-sentence floor".
- ``random_caption``: a reference caption of a random frame of another shot against the true
  references. Paper §4.2's "random caption against ground truth".

Windows of one frame across repeats are not independent, and neither are neighbouring frames
of one shot, so every test is reported at the window, frame and (when shots are known) shot
level, and confidence intervals resample whole frames.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from neurrator.core.errors import InputError
from neurrator.evaluate.base import SentenceScorer

#: Per-window score columns, in display order, with what each one is.
SCORE_COLUMNS: dict[str, str] = {
    "matched": "narration vs true frame's references (mean over references; headline)",
    "matched_max": "narration vs true frame's best reference",
    "shuffled": "narration vs another shot's references (seeded shuffle)",
    "word_salad": "word-salad sentence vs true references (floor)",
    "random_caption": "another shot's caption vs true references (floor)",
}

#: Paired comparisons: the matched score against each control.
COMPARISONS = ("shuffled", "word_salad", "random_caption")


def load_word_salad(path: str | Path | None = None) -> list[str]:
    """The word-salad pool: the bundled 30 sentences, or a JSON list (or ``{"sentences": [...]}``)."""
    if path is None:
        text = resources.files("neurrator.evaluate").joinpath("data/word_salad.json").read_text()
        source: str | Path = "neurrator/evaluate/data/word_salad.json"
    else:
        source = Path(path)
        if not source.is_file():
            raise InputError(source, "word-salad pool not found")
        text = source.read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"word-salad pool is not valid JSON: {exc}") from None
    sentences = raw.get("sentences") if isinstance(raw, dict) else raw
    if not isinstance(sentences, list) or len(sentences) < 2 or not all(isinstance(s, str) and s.strip() for s in sentences):
        raise InputError(source, "word-salad pool must be a JSON list of at least 2 non-empty strings")
    return sentences


def _groups(frames: np.ndarray, shot_of_frame: np.ndarray | None) -> np.ndarray:
    """Unit of non-independence per frame: its shot when known, else the frame itself."""
    return np.asarray(shot_of_frame)[frames] if shot_of_frame is not None else frames


def _draw_other(rng: np.random.Generator, own: np.ndarray, pool_groups: np.ndarray) -> np.ndarray:
    """For each entry of ``own`` (group ids), the index of a random pool item of another group.

    Returns -1 where every pool item shares the group.
    """
    out = np.full(len(own), -1, dtype=np.int64)
    for g in np.unique(own):
        rows = np.flatnonzero(own == g)
        allowed = np.flatnonzero(pool_groups != g)
        if len(allowed):
            out[rows] = allowed[rng.integers(0, len(allowed), size=len(rows))]
    return out


class ReferenceBank:
    """Unit-norm embeddings of every frame's reference captions.

    Parameters
    ----------
    captions : frame index → reference captions (≥ 1 each).
    scorer : the sentence scorer.
    """

    def __init__(self, captions: dict[int, list[str]], scorer: SentenceScorer):
        self.frames = np.array(sorted(f for f, caps in captions.items() if caps), dtype=np.int64)
        if not len(self.frames):
            raise ValueError("no frame has a reference caption")
        self.captions = {int(f): list(captions[f]) for f in self.frames}
        flat = [c for f in self.frames for c in self.captions[int(f)]]
        vectors = scorer.encode(flat)
        self.embeddings: dict[int, np.ndarray] = {}
        start = 0
        for f in self.frames:
            n = len(self.captions[int(f)])
            self.embeddings[int(f)] = vectors[start : start + n]
            start += n
        #: (n_frames_with_captions, dim) mean reference vector, so mean cosine is one dot product.
        self.mean_vectors = np.stack([self.embeddings[int(f)].mean(0) for f in self.frames])
        self._row = {int(f): i for i, f in enumerate(self.frames)}

    def mean_cosine(self, vectors: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(n, dim) unit vectors × (n,) frames → (n,) mean cosine to each frame's references."""
        rows = np.array([self._row[int(f)] for f in frames], dtype=np.int64)
        return np.einsum("nd,nd->n", vectors, self.mean_vectors[rows])

    def max_cosine(self, vectors: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(n, dim) unit vectors × (n,) frames → (n,) best cosine over each frame's references."""
        out = np.empty(len(frames), dtype=np.float32)
        for f in np.unique(frames):
            rows = np.flatnonzero(frames == f)
            out[rows] = (vectors[rows] @ self.embeddings[int(f)].T).max(axis=1)
        return out


def score_windows(
    narrations: list[str],
    frames: np.ndarray,
    captions: dict[int, list[str]] | ReferenceBank,
    scorer: SentenceScorer,
    *,
    word_salad: list[str],
    shot_of_frame: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Score one narration per test window against its true frame and the controls.

    Parameters
    ----------
    narrations : (n,) one sentence per window.
    frames : (n,) int, the stimulus frame each window was recorded on.
    captions : frame → reference captions, or a prepared :class:`ReferenceBank`.
    scorer : sentence scorer (unit-norm embeddings).
    word_salad : the nonsense-sentence pool of the word-salad floor.
    shot_of_frame : (n_frames,) shot id per stimulus frame; controls then come from other shots.
    seed : seeds the shuffled pairing and both floors.

    Returns
    -------
    DataFrame, one row per window: ``frame``, ``narration``, the :data:`SCORE_COLUMNS`,
    ``shuffled_frame``, ``word_salad_sentence``, ``random_caption_frame``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if len(narrations) != len(frames):
        raise ValueError(f"{len(narrations)} narrations for {len(frames)} windows")
    bank = captions if isinstance(captions, ReferenceBank) else ReferenceBank(captions, scorer)
    missing = sorted(set(frames.tolist()) - set(bank.frames.tolist()))
    if missing:
        raise ValueError(f"{len(missing)} test frames have no reference caption, e.g. {missing[:5]}")
    rng = np.random.default_rng(seed)
    window_groups = _groups(frames, shot_of_frame)

    narration_vectors = scorer.encode(list(narrations))
    matched = bank.mean_cosine(narration_vectors, frames)
    matched_max = bank.max_cosine(narration_vectors, frames)

    # Shuffled pairing: the narration against a test window of another shot (or frame).
    partner = _draw_other(rng, window_groups, window_groups)
    if (partner < 0).any():
        partner = np.where(partner < 0, _draw_other(rng, frames, frames), partner)
    shuffled_frame = np.where(partner >= 0, frames[np.maximum(partner, 0)], -1)
    shuffled = np.full(len(frames), np.nan, dtype=np.float32)
    ok = shuffled_frame >= 0
    shuffled[ok] = bank.mean_cosine(narration_vectors[ok], shuffled_frame[ok])

    # Word-salad floor.
    salad_idx = rng.integers(0, len(word_salad), size=len(frames))
    salad_vectors = scorer.encode(list(word_salad))
    word_salad_score = bank.mean_cosine(salad_vectors[salad_idx], frames)

    # Random-caption floor: a caption of a frame from another shot, never the same frame's.
    pick = _draw_other(rng, window_groups, _groups(bank.frames, shot_of_frame))
    if (pick < 0).any():
        pick = np.where(pick < 0, _draw_other(rng, frames, bank.frames), pick)
    random_frame = np.where(pick >= 0, bank.frames[np.maximum(pick, 0)], -1)
    random_caption = np.full(len(frames), np.nan, dtype=np.float32)
    for f in np.unique(random_frame[random_frame >= 0]):
        rows = np.flatnonzero(random_frame == f)
        which = rng.integers(0, len(bank.captions[int(f)]), size=len(rows))
        vectors = bank.embeddings[int(f)][which]
        random_caption[rows] = bank.mean_cosine(vectors, frames[rows])

    return pd.DataFrame(
        {
            "frame": frames,
            "narration": list(narrations),
            "matched": matched.astype(np.float32),
            "matched_max": matched_max.astype(np.float32),
            "shuffled": shuffled,
            "word_salad": word_salad_score.astype(np.float32),
            "random_caption": random_caption,
            "shuffled_frame": shuffled_frame,
            "word_salad_sentence": salad_idx,
            "random_caption_frame": random_frame,
        }
    )


# ---- statistics -------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedTest:
    """A Wilcoxon signed-rank test of ``a`` against ``b`` at one level of aggregation.

    Attributes
    ----------
    level : ``"window"``, ``"frame"`` or ``"shot"`` (values averaged within each unit first).
    n : number of pairs.
    mean_difference : mean of ``a − b``.
    statistic, p_value : scipy's two-sided Wilcoxon signed-rank result (``nan`` if undefined).
    rank_biserial : matched-pairs rank-biserial correlation in [-1, 1] (effect size).
    """

    level: str
    n: int
    mean_difference: float
    statistic: float
    p_value: float
    rank_biserial: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def wilcoxon_test(a: np.ndarray, b: np.ndarray, *, level: str = "window") -> PairedTest:
    """Two-sided Wilcoxon signed-rank test of paired samples ``a`` (n,) and ``b`` (n,)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(keep.sum())
    nonzero = d[d != 0]
    if len(nonzero) == 0:
        return PairedTest(level, n, float(d.mean()) if n else float("nan"), float("nan"), float("nan"), 0.0)
    ranks = stats.rankdata(np.abs(nonzero))
    rank_biserial = float((ranks[nonzero > 0].sum() - ranks[nonzero < 0].sum()) / ranks.sum())
    if len(nonzero) < 2:
        return PairedTest(level, n, float(d.mean()), float("nan"), float("nan"), rank_biserial)
    result = stats.wilcoxon(a[keep], b[keep], alternative="two-sided")
    return PairedTest(level, n, float(d.mean()), float(result.statistic), float(result.pvalue), rank_biserial)


def bootstrap_ci(
    values: np.ndarray, *, n_resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean of ``values`` (n,), via ``scipy.stats.bootstrap``."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) < 2 or np.ptp(values) == 0:
        m = float(values.mean()) if len(values) else float("nan")
        return m, m
    res = stats.bootstrap(
        (values,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
        method="percentile", rng=np.random.default_rng(seed),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def unit_means(values: np.ndarray, units: np.ndarray) -> np.ndarray:
    """Average ``values`` (n,) within each unit id of ``units`` (n,) → (n_units,), sorted by id."""
    frame = pd.DataFrame({"v": np.asarray(values, dtype=np.float64), "u": np.asarray(units)})
    return frame.groupby("u", sort=True)["v"].mean().to_numpy()


def summarize_scores(
    per_window: pd.DataFrame,
    *,
    shot_of_frame: np.ndarray | None = None,
    n_bootstrap: int = 2000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Means ± std, frame-resampled bootstrap CIs and paired tests of a :func:`score_windows` table.

    The CI resamples frames (each frame's windows averaged first), because the repeats of one
    frame are not independent samples. Tests are given at window, frame and shot level; the
    frame level is the one to quote, the shot level is the most conservative.
    """
    frames = per_window["frame"].to_numpy()
    shots = _groups(frames, shot_of_frame) if shot_of_frame is not None else None
    out: dict = {
        "n_windows": len(per_window),
        "n_frames": len(np.unique(frames)),
        "n_shots": len(np.unique(shots)) if shots is not None else None,
        "headline": "matched",
        "headline_definition": SCORE_COLUMNS["matched"],
        "ci": f"{ci_level:.0%} percentile bootstrap over frames ({n_bootstrap} resamples)",
        "scores": {},
        "tests": {},
    }
    if "narration" in per_window:
        sentences = per_window["narration"].astype(str)
        out["unique_sentence_fraction"] = float(sentences.nunique() / max(len(sentences), 1))
    for col in SCORE_COLUMNS:
        if col not in per_window:
            continue
        v = per_window[col].to_numpy(dtype=np.float64)
        per_frame = unit_means(v, frames)
        low, high = bootstrap_ci(per_frame, n_resamples=n_bootstrap, confidence=ci_level, seed=seed)
        out["scores"][col] = {
            "mean": float(np.nanmean(v)),
            "std": float(np.nanstd(v)),
            "frame_std": float(np.nanstd(per_frame)),
            "ci_low": low,
            "ci_high": high,
        }
    for control in COMPARISONS:
        if control not in per_window:
            continue
        a = per_window["matched"].to_numpy(dtype=np.float64)
        b = per_window[control].to_numpy(dtype=np.float64)
        levels = {
            "window": wilcoxon_test(a, b, level="window"),
            "frame": wilcoxon_test(unit_means(a, frames), unit_means(b, frames), level="frame"),
        }
        if shots is not None:
            levels["shot"] = wilcoxon_test(unit_means(a, shots), unit_means(b, shots), level="shot")
        out["tests"][f"matched_vs_{control}"] = {k: t.to_dict() for k, t in levels.items()}
    return out
