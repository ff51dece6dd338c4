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

from neurrator.evaluate.stats import block_bootstrap_ci, paired_test

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
    #: Wilcoxon signed-rank of real vs control on block means (shots, else 1 s blocks).
    p_value: float
    rank_biserial: float
    n_blocks: int
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
    blocks: np.ndarray,
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
    blocks : (n,) block id of each window (:func:`~neurrator.evaluate.stats.block_ids`).
    metrics : the control's :func:`~neurrator.evaluate.embedding.embedding_metrics`, if any.
    """
    if len(control_scores) != len(real_scores):
        raise ValueError("control and real scores must cover the same windows")
    control = control_scores["matched"].to_numpy(dtype=np.float64)
    real = real_scores["matched"].to_numpy(dtype=np.float64)
    ci = block_bootstrap_ci(control, blocks, n_resamples=n_bootstrap, level=ci_level, seed=seed)
    test = paired_test(real, control, blocks)
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
        ci_low=ci.low,
        ci_high=ci.high,
        real_matched_mean=float(np.nanmean(real)),
        p_value=test.p_value,
        rank_biserial=test.rank_biserial,
        n_blocks=test.n_blocks,
        unique_sentence_fraction=unique,
        r1=metrics.get("r1"),
        r10=metrics.get("r10"),
        median_rank=metrics.get("median_rank"),
    )


@dataclass
class ControlInputs:
    """Everything :func:`run_controls` needs, as explicit objects and callables.

    Attributes
    ----------
    pairs : (n, 2) ``(repeat, frame)`` test windows the controls run on.
    real_sentences : (n,) the run's narrations of those windows.
    real_patches : (n, n_patches, dim) the encoder's predictions of those windows.
    blocks : (n,) block id per window (shots, else 1 s blocks).
    n_frames : frames of the stimulus (the time shift wraps around it).
    shift_frames : the time-shifted control's shift, in frames.
    mean_patch : (n_patches, dim) mean training-frame target (the constant guess).
    narrate : the controls' narrator, patches → sentences; ``None`` skips narrator-based controls.
    narrator_name : its name; if it is not the run's narrator the real patches are narrated
        again with it, so real and control differ only in their input.
    renarrate_real : narrate ``real_patches`` with ``narrate`` instead of using ``real_sentences``.
    score : (sentences, frames) → a ``score_windows`` table (``matched`` is compared).
    embed : (predicted patches, true frames) → ``{"r1", "r10", "median_rank"}`` values.
    predict : (pairs, unit mask or None) → predicted patches; ``None`` skips encoder-based controls.
    unit_mask : (n_units,) bool of the non-visual control (hippocampus); ``None`` skips it.
    unit_subset : its spec, for the record.
    seed, n_bootstrap, ci_level : statistics.
    """

    pairs: np.ndarray
    real_sentences: list[str]
    real_patches: np.ndarray
    blocks: np.ndarray
    n_frames: int
    shift_frames: int
    mean_patch: np.ndarray
    narrate: object | None
    narrator_name: str
    renarrate_real: bool
    score: object
    embed: object
    predict: object | None = None
    unit_mask: np.ndarray | None = None
    unit_subset: str = ""
    seed: int = 0
    n_bootstrap: int = 2000
    ci_level: float = 0.95
    skipped: list[str] | None = None


def run_controls(ci: ControlInputs) -> dict:
    """Run every control on the same windows and compare each with the real narrations.

    Returns ``{control name: ControlComparison dict, ..., "skipped": [...]}``.
    """
    import torch

    frames = ci.pairs[:, 1]
    stats = {"n_bootstrap": ci.n_bootstrap, "ci_level": ci.ci_level, "seed": ci.seed}
    results: dict = {}
    skipped = list(ci.skipped or [])
    real = ci.score(ci.real_sentences, frames)

    def record(name: str, sentences: list[str], score_frames: np.ndarray, patches: np.ndarray | None, baseline) -> None:
        scores = ci.score(sentences, score_frames)
        metrics = ci.embed(patches, score_frames) if patches is not None else None
        results[name] = compare_control(name, scores, baseline, ci.blocks, metrics=metrics, **stats).to_dict()

    # Shuffled frame labels: the real narrations and patches judged against permuted frames.
    permuted = shuffled_labels(frames, np.random.default_rng(ci.seed))
    record("shuffled_labels", ci.real_sentences, permuted, ci.real_patches, real)

    if ci.narrate is None:
        if not skipped:
            skipped.append("mean_patch, time_shifted, hippocampus (no narrator)")
    else:
        if ci.renarrate_real:
            real = ci.score(ci.narrate(torch.from_numpy(np.ascontiguousarray(ci.real_patches))), frames)
        sentence = ci.narrate(torch.from_numpy(ci.mean_patch[None]))[0]
        record("mean_patch", [sentence] * len(frames), frames, np.repeat(ci.mean_patch[None], len(frames), axis=0), real)
        if ci.predict is None:
            skipped.append("time_shifted, hippocampus (no trained encoder)")
        else:
            patches = ci.predict(time_shifted_pairs(ci.pairs, ci.n_frames, ci.shift_frames), None)
            record("time_shifted", ci.narrate(patches), frames, patches.numpy(), real)
            results["time_shifted"]["shift_frames"] = ci.shift_frames
            if ci.unit_mask is None:
                skipped.append(f"hippocampus (no units match {ci.unit_subset!r})")
            else:
                patches = ci.predict(ci.pairs, ci.unit_mask)
                record("hippocampus", ci.narrate(patches), frames, patches.numpy(), real)
                results["hippocampus"].update(n_units=int(ci.unit_mask.sum()), subset=ci.unit_subset)
    for name, r in results.items():
        r["narrator"] = ci.narrator_name if name != "shuffled_labels" else "the run's narrations"
    if skipped:
        results["skipped"] = skipped
    return results
