"""PCA basis of the training targets, for the fast basis head.

Fitted on the frames of the training split only, so held-out frames never shape the basis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class BasisFit:
    """A PCA basis of flattened patch tensors.

    Attributes
    ----------
    mean : (n_features,) float32, mean flattened target.
    components : (rank, n_features) float32, orthonormal rows, by decreasing variance.
    scale : (rank,) float32, standard deviation of each coefficient over the training frames.
    explained : fraction of the training-target variance the basis keeps.
    """

    mean: torch.Tensor
    components: torch.Tensor
    scale: torch.Tensor
    explained: float

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])


def fit_patch_basis(patches: np.ndarray, frames: np.ndarray, rank: int, *, chunk: int = 65536) -> BasisFit:
    """Fit a rank-``rank`` PCA basis to ``patches[frames]`` through the frames' Gram matrix.

    The Gram route needs an (n_frames × n_frames) eigendecomposition instead of a
    (n_features × n_features) one, and works through the features in chunks so that only the
    float16 rows (n_frames × n_features × 2 bytes, ~1 GB for 900 CLIP frames) are held.

    Parameters
    ----------
    patches : (n_frames_total, n_patches, dim) float16 array or memmap.
    frames : training frame indices (duplicates are ignored).
    rank : requested number of components; capped at ``len(unique(frames)) - 1``.

    Returns
    -------
    :class:`BasisFit`.
    """
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    if len(frames) < 2:
        raise ValueError("a patch basis needs at least two training frames")
    rows = np.asarray(patches[frames]).reshape(len(frames), -1)  # (n, F), float16
    n, n_features = rows.shape
    mean = np.zeros(n_features, dtype=np.float64)
    for lo in range(0, n_features, chunk):
        mean[lo : lo + chunk] = rows[:, lo : lo + chunk].astype(np.float64).mean(axis=0)

    gram = np.zeros((n, n), dtype=np.float64)
    for lo in range(0, n_features, chunk):
        block = rows[:, lo : lo + chunk].astype(np.float32) - mean[lo : lo + chunk].astype(np.float32)
        gram += (block @ block.T).astype(np.float64)
    eigvals, eigvecs = np.linalg.eigh(gram)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    # Eigenvalues below 1e-6 of the largest are float16/float32 rounding, not signal.
    keep = min(rank, n - 1, int(np.sum(eigvals > eigvals[0] * 1e-6)))
    singular = np.sqrt(eigvals[:keep])

    # Principal directions V = X_cᵀ U / s, computed chunk by chunk over the features.
    weights = (eigvecs[:, :keep] / singular).astype(np.float32)  # (n, rank)
    components = np.empty((keep, n_features), dtype=np.float32)
    for lo in range(0, n_features, chunk):
        block = rows[:, lo : lo + chunk].astype(np.float32) - mean[lo : lo + chunk].astype(np.float32)
        components[:, lo : lo + chunk] = weights.T @ block
    explained = float(eigvals[:keep].sum() / max(eigvals.clip(min=0).sum(), 1e-30))
    return BasisFit(
        mean=torch.from_numpy(mean.astype(np.float32)),
        components=torch.from_numpy(components),
        scale=torch.from_numpy((singular / np.sqrt(n - 1)).astype(np.float32)),
        explained=explained,
    )
