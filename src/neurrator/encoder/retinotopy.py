"""Which units see which patches: retinotopy estimated on training frames only.

For the receptive-field-aware local readout (:class:`~neurrator.encoder.model.LocalReadout`):
each unit's response to a frame (its mean z-scored response over the frame's training windows)
is correlated, across the training frames, with each patch's main mode of variation in the
vision space (the patch's score on the first principal component of its own features over the
training frames). A unit whose receptive field covers a patch follows what happens there; a unit
elsewhere does not. Each patch keeps the ``k`` units with the largest |correlation|, weighted by
it (weights sum to 1 per patch).

Held-out frames never enter: frames and windows come from the training pairs only.
"""

from __future__ import annotations

import numpy as np
import torch

from neurrator.preprocess.types import NeuralDataset
from neurrator.vision.base import PatchTargets


def frame_responses(dataset: NeuralDataset, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames (F,), mean window response per frame and unit (F, n_units)) over ``pairs``."""
    from neurrator.encoder.train import WindowSampler

    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    frames, inverse = np.unique(pairs[:, 1], return_inverse=True)
    sums = np.zeros((len(frames), dataset.n_units), dtype=np.float64)
    sampler = WindowSampler(dataset)
    for lo in range(0, len(pairs), 512):
        means = sampler.gather(pairs[lo : lo + 512]).mean(dim=1).numpy()
        np.add.at(sums, inverse[lo : lo + 512], means)
    return frames, sums / np.bincount(inverse)[:, None]


def estimate_retinotopy(dataset: NeuralDataset, targets: PatchTargets, train_pairs: np.ndarray,
                        k: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """Support and weights of the local readout from the training pairs.

    Returns
    -------
    support : (n_patches, k) int64 unit indices, best-seeing first.
    weight : (n_patches, k) float32, |correlation| normalised to sum 1 per patch.
    correlation : (n_units, n_patches) float32 |correlation| map (for plots and tests).
    """
    frames, responses = frame_responses(dataset, train_pairs)
    patches = np.asarray(targets.patches[frames], dtype=np.float32)  # (F, P, D)
    centred = patches - patches.mean(axis=0)
    score = np.empty(centred.shape[:2], dtype=np.float32)  # (F, P): each patch's first-PC score
    for p in range(centred.shape[1]):
        _, _, vh = np.linalg.svd(centred[:, p], full_matrices=False)
        score[:, p] = centred[:, p] @ vh[0]
    zr = (responses - responses.mean(0)) / (responses.std(0) + 1e-8)
    zs = (score - score.mean(0)) / (score.std(0) + 1e-8)
    correlation = np.abs(zr.T @ zs / len(frames)).astype(np.float32)  # (U, P)
    k = min(k, dataset.n_units)
    support = np.argsort(-correlation, axis=0, kind="stable")[:k].T  # (P, k)
    weight = np.take_along_axis(correlation.T, support, axis=1)
    weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    return torch.from_numpy(support.astype(np.int64)), torch.from_numpy(weight.astype(np.float32)), correlation
