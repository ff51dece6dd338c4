"""A planted linear-nonlinear problem for encoder tests and benchmarks.

A smooth latent trajectory ``z`` (n_frames, n_latent) — a movie whose content drifts — drives
both the patch targets (a fixed linear map of ``z`` plus per-patch structure) and Poisson spike
counts at 120 Hz (an exponential-linear function of ``z`` with per-unit latencies). The
encoder can only beat the mean-patch floor by reading ``z`` out of the spikes, so a broken
model or training loop fails the tests built on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from neurrator.preprocess.types import NeuralDataset, Split, ZScoreStats
from neurrator.vision.base import PatchTargets, SpaceInfo

_AREAS = ("VISp", "VISl", "VISal", "LGd", "CA1")


def synthetic_problem(
    n_units: int = 60,
    n_frames: int = 120,
    n_repeats: int = 6,
    n_patches: int = 16,
    dim: int = 8,
    *,
    n_latent: int = 6,
    informative: float = 0.8,
    rate_hz: float = 20.0,
    seed: int = 0,
) -> tuple[NeuralDataset, PatchTargets, Split]:
    """Build (dataset, targets, split) for a planted encoding problem.

    Parameters
    ----------
    n_units, n_frames, n_repeats : size of the simulated session (4 bins per frame at 120 Hz).
    n_patches, dim : target shape; the grid is square when ``n_patches`` is a square.
    n_latent : dimension of the latent that drives spikes and targets.
    informative : fraction of units tuned to the latent (the rest fire at a constant rate;
        the last 20 % of units are labelled ``CA1`` and are never tuned).
    rate_hz : mean firing rate.

    Returns
    -------
    dataset : :class:`NeuralDataset`, responses (n_repeats, 4·n_frames + 20, n_units) z-scored
        with the training repeats.
    targets : :class:`PatchTargets`, (n_frames, n_patches, dim) float16 in memory.
    split : ``"repeats"`` split: the last repeat is test, the one before it validation.
    """
    rng = np.random.default_rng(seed)
    bins_per_frame, window, pad = 4, 20, 10

    # A movie: the latent drifts smoothly from frame to frame.
    steps = rng.normal(size=(n_frames, n_latent))
    kernel = np.exp(-0.5 * (np.arange(-12, 13) / 4.0) ** 2)
    z = np.stack([np.convolve(steps[:, k], kernel, mode="same") for k in range(n_latent)], axis=1)
    z = (z - z.mean(0)) / z.std(0)

    structure = rng.normal(size=(n_patches, dim))  # per-patch offset shared by all frames
    mixing = rng.normal(size=(n_latent, n_patches * dim)) / np.sqrt(n_latent)
    patches = np.empty((n_frames, n_patches, dim), dtype=np.float16)
    for lo in range(0, n_frames, 32):  # in chunks: 900 CLIP-sized frames would need 4 GB as float64
        block = (z[lo : lo + 32] @ mixing).reshape(-1, n_patches, dim)
        patches[lo : lo + 32] = 1.5 * structure[None] + block

    # Spikes: exp-linear tuning to the latent of the frame shown `lag` bins ago.
    tuned = rng.random(n_units) < informative
    n_hippocampal = n_units // 5
    tuned[n_units - n_hippocampal :] = False
    weights = rng.normal(size=(n_latent, n_units)) * 0.6 * tuned
    lags = rng.integers(4, 9, n_units)
    n_bins = n_frames * bins_per_frame
    frame_of_bin = np.arange(n_bins) // bins_per_frame
    drive = z @ weights  # (n_frames, n_units)
    rates = np.empty((n_bins, n_units), dtype=np.float32)
    for lag in np.unique(lags):
        cols = lags == lag
        shown = np.clip(frame_of_bin - lag, 0, n_frames - 1)
        rates[:, cols] = rate_hz * np.exp(drive[shown][:, cols] - 0.5 * (weights[:, cols] ** 2).sum(0))
    # Counts repeat by repeat, straight into the padded array (2,000 units × 20 repeats is 0.6 GB).
    responses = np.zeros((n_repeats, n_bins + 2 * pad, n_units), dtype=np.float32)
    for r in range(n_repeats):
        responses[r, pad : pad + n_bins] = rng.poisson(rates / 120.0)
    train_repeats, val_repeat, test_repeat = np.arange(n_repeats - 2), n_repeats - 2, n_repeats - 1
    body = responses[:, pad : pad + n_bins]
    total = np.zeros(n_units)
    total_sq = np.zeros(n_units)
    for r in train_repeats:
        total += body[r].sum(0, dtype=np.float64)
        total_sq += (body[r].astype(np.float64) ** 2).sum(0)
    n = len(train_repeats) * n_bins
    mean = (total / n).astype(np.float32)
    std = np.sqrt(np.maximum(total_sq / n - (total / n) ** 2, 0)).astype(np.float32)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    for r in range(n_repeats):
        body[r] -= mean
        body[r] /= std

    areas = np.array([_AREAS[i % 4] for i in range(n_units)], dtype=object)
    areas[n_units - n_hippocampal :] = "CA1"
    units = pd.DataFrame(
        {
            "area": areas,
            "probe": np.where(np.arange(n_units) % 2 == 0, "probeA", "probeB"),
            "depth": rng.uniform(0, 3000, n_units).round(1),
            "cell_type": [("PV" if i % 7 == 0 else None) for i in range(n_units)],
            "session_id": "synthetic0",
        },
        index=pd.Index(np.arange(5000, 5000 + n_units), name="unit_id"),
    )
    dataset = NeuralDataset(
        stimulus="natural_movie_one", responses=responses, bins_per_frame=bins_per_frame, window=window,
        pad=pad, units=units, zscore=ZScoreStats(mean=mean.astype(np.float32), std=std), n_frames=n_frames,
        meta={"synthetic": True, "seed": seed},
    )
    side = round(np.sqrt(n_patches))
    grid = (side, side) if side * side == n_patches else (1, n_patches)
    info = SpaceInfo(space_id=f"synthetic-{n_patches}x{dim}", grid=grid, dim=dim, layer="planted",
                     is_stand_in=True, description="planted linear map of a latent (encoder tests)")
    targets = PatchTargets(patches=patches, info=info, stimulus_hash=f"synthetic-{seed}")
    frames = np.arange(n_frames)

    def pairs(repeats) -> np.ndarray:
        return np.stack(np.meshgrid(repeats, frames, indexing="ij"), -1).reshape(-1, 2)

    split = Split(name="repeats", train=pairs(train_repeats), val=pairs([val_repeat]), test=pairs([test_repeat]),
                  seed=seed, description="last repeat test, the one before validation")
    return dataset, targets, split


def memmap_targets(targets: PatchTargets, path: str | Path) -> PatchTargets:
    """Write ``targets`` to ``path`` (.npy) and return them memory-mapped, like the real cache."""
    path = Path(path)
    np.save(path, np.asarray(targets.patches, dtype=np.float16))
    return PatchTargets(patches=np.load(path, mmap_mode="r"), info=targets.info, stimulus_hash=targets.stimulus_hash)
