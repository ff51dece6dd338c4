"""Train / validation / test partitions of ``(repeat, frame)`` samples, leakage-free by construction.

=========================  ==================================================================
name                       what is held out for test
=========================  ==================================================================
repeats                    whole repeats (train / validation / test by repeat)
sparse_random              a random ``heldout_fraction`` of frames, on every repeat
contiguous_middle          frames 250–449 of the 900-frame movie (same fractions for other lengths)
front_only                 everything after frame 199: train on frames 0–199 only
scene_identity             whole natural-scenes images, on every presentation
sparse_random_paper        LEAKY: the paper's sparse_random, without the purge below
contiguous_middle_paper    LEAKY: the paper's contiguous_middle, without the purge
front_only_paper           LEAKY: the paper's front_only, without the purge
=========================  ==================================================================

**Leakage.** A window of ``window`` bins centred on frame ``f`` (``bins_per_frame`` bins per
frame) starts at bin ``bins_per_frame·f + bins_per_frame//2 − window//2``; training shifts it
by up to ``±jitter`` bins. Two windows of frames ``f`` and ``g`` on the same repeat share a bin
when ``bins_per_frame·|f − g| ≤ window − 1 + jitter + test_jitter``. So every training and
validation frame within the **guard**

    guard = (window − 1 + jitter + test_jitter) // bins_per_frame

of a test frame (5 frames for 20-bin windows, 4 bins per frame, ±2 bins) is purged from
training and validation. Repeats are separate rows of the response array (zero padding in
between), so windows of different repeats never share a bin. The guard is derived from the
window geometry, never a constant; :func:`measure_overlap` then counts, bin by bin and
independently of the formula, the test windows that still share a bin with a training or
validation window, and the split records it (0 for every leakage-free split).

The paper's leaky definitions stay available under the ``*_paper`` names, are labelled leaky
(``Split.leaky``, the description starts with ``LEAKY``) and are never a default.

For the frame and image hold-outs, validation uses the (purged) training frames on a few
held-out repeats, so early stopping never sees a test frame. Everything is drawn from ``seed``.
"""

from __future__ import annotations

import numpy as np

from neurrator.core.errors import InputError
from neurrator.preprocess.types import Split

#: Leakage-free splits of a movie, all written by ``neurrator ingest``.
MOVIE_SPLITS = ("repeats", "sparse_random", "contiguous_middle", "front_only")
SCENE_SPLITS = ("repeats", "scene_identity")
#: The paper's own definitions, whose training windows share bins with test windows.
LEAKY_SPLITS = ("sparse_random_paper", "contiguous_middle_paper", "front_only_paper")
SPLIT_NAMES = (*MOVIE_SPLITS, "scene_identity", *LEAKY_SPLITS)

#: Frame ranges of the paper for the 900-frame natural_movie_one, as fractions of the length.
_MIDDLE = (250 / 900, 450 / 900)
_FRONT_END = 200 / 900


def leak_guard(window: int, bins_per_frame: int, jitter: int, test_jitter: int = 0) -> int:
    """Frames on either side of a test frame whose windows can share a bin with its window."""
    if window < 1 or bins_per_frame < 1 or jitter < 0 or test_jitter < 0:
        raise ValueError(f"bad window geometry: window={window}, bins_per_frame={bins_per_frame}, "
                         f"jitter={jitter}, test_jitter={test_jitter}")
    return (window - 1 + jitter + test_jitter) // bins_per_frame


def make_split(
    name: str,
    n_repeats: int,
    n_frames: int,
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    heldout_fraction: float = 0.1,
    window: int = 20,
    bins_per_frame: int = 4,
    jitter: int = 2,
    test_jitter: int = 0,
) -> Split:
    """Build the split ``name`` for an ``n_repeats × n_frames`` grid of samples.

    Parameters
    ----------
    name : one of :data:`SPLIT_NAMES`.
    n_repeats, n_frames : size of the sample grid (repeats × frames, or presentations × images).
    seed : seed of every random choice.
    val_fraction : fraction of repeats used for validation (at least one if > 0).
    test_fraction : fraction of repeats held out for test by ``repeats``.
    heldout_fraction : fraction of frames (``sparse_random``) or images (``scene_identity``)
        held out for test.
    window, bins_per_frame : window length in bins and bins per frame of the dataset the split
        is for (defaults: the paper's 20-bin windows at 4 bins per 30 Hz frame; natural scenes
        use ``bins_per_frame = scene_bins``).
    jitter : the largest ± shift (bins) of a training or validation window (training augmentation).
    test_jitter : the largest ± shift of a test window (0: test windows are read unshifted).

    Returns
    -------
    split : :class:`Split` with (n, 2) int64 ``(repeat, frame)`` arrays, its guard, the purged
        frames and the measured overlap.
    """
    if name not in SPLIT_NAMES:
        raise InputError(None, f"unknown split {name!r}; choose one of: {', '.join(SPLIT_NAMES)}")
    leaky = name in LEAKY_SPLITS
    base = name.removesuffix("_paper") if leaky else name
    guard = leak_guard(window, bins_per_frame, jitter, test_jitter)
    geometry = {"window": window, "bins_per_frame": bins_per_frame, "jitter": jitter, "test_jitter": test_jitter}
    rng = np.random.default_rng(seed)
    repeats = rng.permutation(n_repeats)
    n_val = max(1, round(val_fraction * n_repeats)) if val_fraction > 0 else 0

    if base == "repeats":
        n_test = max(1, round(test_fraction * n_repeats))
        if n_repeats < n_test + n_val + 1:
            raise InputError(None, f"split 'repeats' needs at least {n_test + n_val + 1} repeats, got {n_repeats}")
        test_r, val_r, train_r = repeats[:n_test], repeats[n_test : n_test + n_val], repeats[n_test + n_val :]
        all_frames = np.arange(n_frames)
        return _finish(Split(
            name=name, train=_pairs(train_r, all_frames), val=_pairs(val_r, all_frames),
            test=_pairs(test_r, all_frames), seed=seed,
            description=f"repeats {sorted(test_r.tolist())} held out for test, {sorted(val_r.tolist())} for validation",
            guard_frames=guard, **geometry,
        ))

    if n_repeats < n_val + 1:
        raise InputError(None, f"split {name!r} needs at least {n_val + 1} repeats, got {n_repeats}")
    if base in ("sparse_random", "scene_identity"):
        n_held = max(1, round(heldout_fraction * n_frames))
        test_f = np.sort(rng.choice(n_frames, size=n_held, replace=False))
        what = "images" if base == "scene_identity" else "frames"
        description = f"{n_held} random {what} of {n_frames} held out on every repeat"
    elif base == "contiguous_middle":
        lo, hi = round(_MIDDLE[0] * n_frames), round(_MIDDLE[1] * n_frames)
        test_f = np.arange(lo, hi)
        description = f"frames {lo}-{hi - 1} held out on every repeat"
    else:  # front_only
        end = round(_FRONT_END * n_frames)
        test_f = np.arange(end, n_frames)
        description = f"train on frames 0-{end - 1} only; frames {end}-{n_frames - 1} held out"
    if len(test_f) in (0, n_frames):
        raise InputError(None, f"split {name!r} leaves no train or no test frames for {n_frames} frames")
    train_f = np.setdiff1d(np.arange(n_frames), test_f)
    purged = np.zeros(0, dtype=np.int64)
    if not leaky and guard > 0:
        near = np.abs(train_f[:, None] - test_f[None, :]).min(axis=1) <= guard
        purged, train_f = train_f[near], train_f[~near]
        if not len(train_f):
            raise InputError(None, f"split {name!r}: no training frame is more than {guard} frames from a test frame "
                                   f"({n_frames} frames, heldout_fraction {heldout_fraction}); hold out fewer frames")
        description += (f"; {len(purged)} training frames within {guard} frames of a test frame purged "
                        f"(guard from {window}-bin windows, {bins_per_frame} bins/frame, ±{jitter} bins jitter)")
    val_r, train_r = repeats[:n_val], repeats[n_val:]
    if n_val:
        description += f"; validation on training frames of repeats {sorted(val_r.tolist())}"
    split = _finish(Split(
        name=name, train=_pairs(train_r, train_f), val=_pairs(val_r, train_f), test=_pairs(np.arange(n_repeats), test_f),
        seed=seed, description=description, guard_frames=0 if leaky else guard, purged_frames=purged, leaky=leaky,
        **geometry,
    ))
    if leaky:
        split = split.with_description(f"LEAKY (the paper's definition, no purge): {split.overlap:.1%} of test windows "
                                       f"share time bins with training/validation windows; {description}")
    return split


def measure_overlap(
    train_val: np.ndarray, test: np.ndarray, *, window: int, bins_per_frame: int,
    jitter: int | tuple[int, int], test_jitter: int | tuple[int, int] = 0,
) -> float:
    """Fraction of ``test`` windows that share a time bin with a ``train_val`` window (same repeat).

    Counted bin by bin from the window positions (``train_val`` windows widened by ``±jitter``,
    test windows by ``±test_jitter``), independently of :func:`leak_guard`'s formula. Either
    jitter may be a ``(lowest, highest)`` shift range in bins instead (e.g. the encoder's
    bin sampling, or the shifts of temporal ensembling).
    """
    train_val = np.asarray(train_val, dtype=np.int64).reshape(-1, 2)
    test = np.asarray(test, dtype=np.int64).reshape(-1, 2)
    if not len(test):
        return 0.0
    offset = bins_per_frame // 2 - window // 2
    as_range = lambda j: (-j, j) if np.isscalar(j) else (int(j[0]), int(j[1]))
    jitter, test_jitter = as_range(jitter), as_range(test_jitter)

    def span(frames: np.ndarray, j: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        start = frames * bins_per_frame + offset
        return start + j[0], start + window - 1 + j[1]  # inclusive

    all_frames = np.concatenate([train_val[:, 1], test[:, 1]]) if len(train_val) else test[:, 1]
    shift = window + max(map(abs, (*jitter, *test_jitter)))  # makes every bin index ≥ 0
    length = int(all_frames.max()) * bins_per_frame + 2 * shift + window + bins_per_frame + 1
    leaky = 0
    for r in np.unique(test[:, 0]):
        tests = test[test[:, 0] == r, 1]
        trains = train_val[train_val[:, 0] == r, 1]
        if not len(trains):
            continue
        lo, hi = span(trains, jitter)
        cover = np.zeros(length + 1, dtype=np.int64)
        np.add.at(cover, lo + shift, 1)
        np.add.at(cover, hi + shift + 1, -1)
        covered = np.concatenate([[0], np.cumsum(np.cumsum(cover)[:length] > 0)])  # prefix counts of covered bins
        tlo, thi = span(tests, test_jitter)
        leaky += int(np.sum(covered[thi + shift + 1] - covered[tlo + shift] > 0))
    return leaky / len(test)


def _finish(split: Split) -> Split:
    """``split`` with its measured overlap; a leakage-free split with overlap > 0 is a bug."""
    overlap = measure_overlap(np.concatenate([split.train, split.val]), split.test, window=split.window,
                              bins_per_frame=split.bins_per_frame, jitter=split.jitter, test_jitter=split.test_jitter)
    if overlap > 0 and not split.leaky:
        raise AssertionError(f"split {split.name!r}: {overlap:.1%} of test windows share bins with training windows "
                             f"despite a guard of {split.guard_frames} frames")
    return split.with_overlap(overlap)


def _pairs(repeats: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """All ``(repeat, frame)`` pairs, sorted, as an (n, 2) int64 array."""
    r, f = np.meshgrid(np.sort(repeats), np.sort(frames), indexing="ij")
    return np.stack([r.ravel(), f.ravel()], axis=1).astype(np.int64)
