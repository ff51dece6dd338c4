"""Controls: inputs that carry no (or the wrong) stimulus information, scored like the real thing.

A decoder that is really reading the stimulus from the spikes must lose its score under each
of these:

- ``time_shifted``: every test window is replaced by the window recorded a fixed, large time
  later (circularly over the stimulus), and its narration is scored against the *original*
  frame. Spikes stay real and stimulus-driven, only their alignment is broken.
- ``shuffled_labels``: the test windows' frame labels are permuted (seeded) before scoring, so
  narrations and patches are judged against frames they were not recorded on. No re-training.
- ``mean_patch``: the mean training-frame target tensor, the best constant guess, is narrated
  for every window. It measures how far a narrator's prior alone goes.
- ``hippocampus``: the encoder is queried with hippocampal units only (CA1/CA3/DG), a
  non-visual population (paper §4.2).

This module builds the perturbed inputs and compares scores; the ``evaluate`` stage runs the
encoder and the narrator on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurrator.evaluate.scores import bootstrap_ci, unit_means, wilcoxon_test

#: Control name → one-line description (for tables and the summary).
CONTROL_DESCRIPTIONS: dict[str, str] = {
    "time_shifted": "spike windows shifted by a large time offset (circular), scored against the true frame",
    "shuffled_labels": "test windows' frame labels permuted (seeded) before scoring",
    "mean_patch": "the mean training-frame target tensor narrated for every window",
    "hippocampus": "encoder queried with hippocampal units only (CA1/CA3/DG)",
}


def time_shifted_pairs(pairs: np.ndarray, n_frames: int, shift_frames: int) -> np.ndarray:
    """(n, 2) ``(repeat, frame)`` pairs → the same repeats, frames moved by ``shift_frames`` (mod n).

    Shifting the frame index by ``shift_frames`` moves the window by ``shift_frames ×
    bins_per_frame`` bins; wrapping keeps every shifted window inside the recording.
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2).copy()
    if not 0 < shift_frames % n_frames:
        raise ValueError(f"shift of {shift_frames} frames is a multiple of the {n_frames}-frame stimulus")
    pairs[:, 1] = (pairs[:, 1] + shift_frames) % n_frames
    return pairs


def shuffled_labels(frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A seeded permutation of ``frames`` (n,) in which, where possible, no window keeps its frame."""
    frames = np.asarray(frames, dtype=np.int64)
    permuted = frames[rng.permutation(len(frames))]
    # Fix the few windows that drew their own frame by swapping with a random other window.
    for i in np.flatnonzero(permuted == frames):
        candidates = np.flatnonzero((permuted != frames[i]) & (frames != permuted[i]))
        if len(candidates):
            j = rng.choice(candidates)
            permuted[i], permuted[j] = permuted[j], permuted[i]
    return permuted


def mean_training_patch(patches: np.ndarray, train_frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Mean of ``patches`` (n_frames, n_patches, dim) over ``train_frames`` → (n_patches, dim) float32."""
    train_frames = np.unique(np.asarray(train_frames, dtype=np.int64))
    total = np.zeros(patches.shape[1:], dtype=np.float64)
    for start in range(0, len(train_frames), batch_size):
        total += np.asarray(patches[train_frames[start : start + batch_size]], dtype=np.float64).sum(axis=0)
    return (total / len(train_frames)).astype(np.float32)


@dataclass(frozen=True)
class ControlComparison:
    """How a control's matched scores compare with the real narrations' on the same windows."""

    name: str
    description: str
    n_windows: int
    matched_mean: float
    matched_std: float
    ci_low: float
    ci_high: float
    real_matched_mean: float
    #: Wilcoxon of real vs control, windows of one frame averaged first.
    frame_p_value: float
    frame_rank_biserial: float
    unique_sentence_fraction: float | None
    r1: float | None = None
    r10: float | None = None
    median_rank: float | None = None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def compare_control(
    name: str,
    control_scores: pd.DataFrame,
    real_scores: pd.DataFrame,
    *,
    metrics: dict | None = None,
    n_bootstrap: int = 2000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> ControlComparison:
    """Summarise one control against the real narrations, window by window.

    Parameters
    ----------
    control_scores, real_scores : :func:`~neurrator.evaluate.scores.score_windows` tables of the
        same windows in the same order (``frame`` = the true frame of each window).
    metrics : the control's :func:`~neurrator.evaluate.embedding.embedding_metrics`, if any.
    """
    if len(control_scores) != len(real_scores):
        raise ValueError("control and real scores must cover the same windows")
    frames = real_scores["frame"].to_numpy()
    control = control_scores["matched"].to_numpy(dtype=np.float64)
    real = real_scores["matched"].to_numpy(dtype=np.float64)
    low, high = bootstrap_ci(unit_means(control, frames), n_resamples=n_bootstrap, confidence=ci_level, seed=seed)
    test = wilcoxon_test(unit_means(real, frames), unit_means(control, frames), level="frame")
    unique = None
    if "narration" in control_scores:
        unique = float(control_scores["narration"].astype(str).nunique() / max(len(control_scores), 1))
    metrics = metrics or {}
    return ControlComparison(
        name=name,
        description=CONTROL_DESCRIPTIONS.get(name, name),
        n_windows=len(control),
        matched_mean=float(np.nanmean(control)),
        matched_std=float(np.nanstd(control)),
        ci_low=low,
        ci_high=high,
        real_matched_mean=float(np.nanmean(real)),
        frame_p_value=test.p_value,
        frame_rank_biserial=test.rank_biserial,
        unique_sentence_fraction=unique,
        r1=metrics.get("r1"),
        r10=metrics.get("r10"),
        median_rank=metrics.get("median_rank"),
    )
