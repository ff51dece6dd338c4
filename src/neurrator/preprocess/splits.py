"""The paper's train / validation / test partitions of ``(repeat, frame)`` samples.

=================  ==========================================================================
name               what is held out for test
=================  ==========================================================================
repeats            whole repeats (train / validation / test by repeat)
sparse_random      a random ``heldout_fraction`` of frames, on every repeat
contiguous_middle  frames 250–449 of the 900-frame movie (the same fractions for other lengths)
front_only         everything after frame 199: train on frames 0–199 only
scene_identity     whole natural-scenes images, on every presentation
=================  ==========================================================================

For the frame and image hold-outs, validation uses the training frames on a few held-out
repeats, so early stopping never sees a test frame. Everything is drawn from ``seed``.
"""

from __future__ import annotations

import numpy as np

from neurrator.core.errors import InputError
from neurrator.preprocess.types import Split

SPLIT_NAMES = ("repeats", "sparse_random", "contiguous_middle", "front_only", "scene_identity")
MOVIE_SPLITS = ("repeats", "sparse_random", "contiguous_middle", "front_only")
SCENE_SPLITS = ("repeats", "scene_identity")

#: Frame ranges of the paper for the 900-frame natural_movie_one, as fractions of the length.
_MIDDLE = (250 / 900, 450 / 900)
_FRONT_END = 200 / 900


def make_split(
    name: str,
    n_repeats: int,
    n_frames: int,
    seed: int = 0,
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    heldout_fraction: float = 0.1,
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

    Returns
    -------
    split : :class:`Split` with (n, 2) int64 ``(repeat, frame)`` arrays.
    """
    if name not in SPLIT_NAMES:
        raise InputError(None, f"unknown split {name!r}; choose one of: {', '.join(SPLIT_NAMES)}")
    rng = np.random.default_rng(seed)
    repeats = rng.permutation(n_repeats)
    n_val = max(1, round(val_fraction * n_repeats)) if val_fraction > 0 else 0

    if name == "repeats":
        n_test = max(1, round(test_fraction * n_repeats))
        if n_repeats < n_test + n_val + 1:
            raise InputError(None, f"split 'repeats' needs at least {n_test + n_val + 1} repeats, got {n_repeats}")
        test_r, val_r, train_r = repeats[:n_test], repeats[n_test : n_test + n_val], repeats[n_test + n_val :]
        all_frames = np.arange(n_frames)
        return Split(
            name=name,
            train=_pairs(train_r, all_frames),
            val=_pairs(val_r, all_frames),
            test=_pairs(test_r, all_frames),
            seed=seed,
            description=f"repeats {sorted(test_r.tolist())} held out for test, {sorted(val_r.tolist())} for validation",
        )

    if n_repeats < n_val + 1:
        raise InputError(None, f"split {name!r} needs at least {n_val + 1} repeats, got {n_repeats}")
    if name in ("sparse_random", "scene_identity"):
        n_held = max(1, round(heldout_fraction * n_frames))
        test_f = np.sort(rng.choice(n_frames, size=n_held, replace=False))
        what = "images" if name == "scene_identity" else "frames"
        description = f"{n_held} random {what} of {n_frames} held out on every repeat"
    elif name == "contiguous_middle":
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
    val_r, train_r = repeats[:n_val], repeats[n_val:]
    return Split(
        name=name,
        train=_pairs(train_r, train_f),
        val=_pairs(val_r, train_f),
        test=_pairs(np.arange(n_repeats), test_f),
        seed=seed,
        description=description + (f"; validation on training frames of repeats {sorted(val_r.tolist())}" if n_val else ""),
    )


def _pairs(repeats: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """All ``(repeat, frame)`` pairs, sorted, as an (n, 2) int64 array."""
    r, f = np.meshgrid(np.sort(repeats), np.sort(frames), indexing="ij")
    return np.stack([r.ravel(), f.ravel()], axis=1).astype(np.int64)
