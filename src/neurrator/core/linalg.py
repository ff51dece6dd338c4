"""Linear algebra shared by the encoder head, the baselines, the benchmark and the analyses.

One home each for:

- :func:`fit_pca_basis` → :class:`PCABasis`: principal components of flattened patch tensors
  of a set of frames, through the frames' Gram matrix. The Gram route needs an
  (n_frames × n_frames) eigendecomposition instead of an (n_features × n_features) one, and
  reads the (possibly memory-mapped, float16) target cache a chunk of patches at a time, so
  a 900 × 576 × 1024 CLIP cache is never loaded whole.
- :func:`pool_patches`: the mean over patches, (n, n_patches, dim) → (n, dim), in batches.
- :func:`mean_patch`: the mean patch tensor of a set of frames (the best constant guess).
- :func:`center` and :func:`unit_rows`: centring on a reference mean and row normalisation,
  the two steps of every cosine readout.

Everything is NumPy, float32 outputs, float64 accumulation where sums get long.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pool_patches(patches: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """(n, n_patches, dim) → (n, dim) float32 mean over patches, in batches (works on memmaps)."""
    n = patches.shape[0]
    out = np.empty((n, patches.shape[-1]), dtype=np.float32)
    for start in range(0, n, batch_size):
        out[start : start + batch_size] = np.asarray(patches[start : start + batch_size], dtype=np.float32).mean(axis=1)
    return out


def mean_patch(patches: np.ndarray, frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
    """Mean of ``patches[frames]`` over the (unique) ``frames`` → (n_patches, dim) float32.

    ``patches``: (n_frames_total, n_patches, dim) array or memmap; read ``batch_size`` frames at a time.
    """
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    if not len(frames):
        raise ValueError("mean_patch needs at least one frame")
    total = np.zeros(patches.shape[1:], dtype=np.float64)
    for start in range(0, len(frames), batch_size):
        total += np.asarray(patches[frames[start : start + batch_size]], dtype=np.float64).sum(axis=0)
    return (total / len(frames)).astype(np.float32)


def center(x: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """``x`` (n, ...) minus ``mean`` (broadcast over rows; default: ``x``'s own row mean), float32."""
    x = np.asarray(x, dtype=np.float32)
    return x - (x.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float32))


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` (n, ...) flattened to (n, d) and scaled to unit norm (zero rows stay zero)."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class PCABasis:
    """A PCA basis of flattened (n_patches × dim) patch tensors.

    Attributes
    ----------
    mean : (n_features,) float32, the mean flattened tensor of the fitted frames.
    components : (rank, n_features) float32, orthonormal rows by decreasing variance.
    singular_values : (rank,) float64, singular values of the centred (n_frames × n_features) data.
    total_variance : sum of squared centred entries (trace of the Gram matrix).
    n_samples : number of frames fitted.
    shape : ``(n_patches, dim)`` of one tensor.
    frames : (n_samples,) the frames fitted (sorted, unique).
    """

    mean: np.ndarray
    components: np.ndarray
    singular_values: np.ndarray
    total_variance: float
    n_samples: int
    shape: tuple[int, int]
    frames: np.ndarray

    @property
    def rank(self) -> int:
        return int(self.components.shape[0])

    @property
    def scale(self) -> np.ndarray:
        """(rank,) float32 standard deviation of each coefficient over the fitted frames."""
        return (self.singular_values / np.sqrt(max(self.n_samples - 1, 1))).astype(np.float32)

    @property
    def explained_variance_ratio(self) -> np.ndarray:
        """(rank,) fraction of the fitted frames' variance along each component."""
        return (self.singular_values**2 / max(self.total_variance, 1e-30)).astype(np.float32)

    @property
    def explained(self) -> float:
        """Fraction of the fitted frames' variance the basis keeps."""
        return float(self.explained_variance_ratio.sum())

    def transform(self, patches: np.ndarray, frames: np.ndarray, *, batch_size: int = 64) -> np.ndarray:
        """Coefficients of ``patches[frames]`` → (len(frames), rank) float32 (not whitened)."""
        frames = np.asarray(frames, dtype=np.int64)
        out = np.empty((len(frames), self.rank), dtype=np.float32)
        for start in range(0, len(frames), batch_size):
            block = np.asarray(patches[frames[start : start + batch_size]], dtype=np.float32).reshape(-1, self.mean.size)
            out[start : start + len(block)] = (block - self.mean) @ self.components.T
        return out

    def inverse_transform(self, coefs: np.ndarray) -> np.ndarray:
        """(n, rank) coefficients → (n, n_patches, dim) float32 patch tensors."""
        flat = np.asarray(coefs, dtype=np.float32) @ self.components + self.mean
        return flat.reshape(len(flat), *self.shape)

    def pooled(self, coefs: np.ndarray) -> np.ndarray:
        """(n, rank) → (n, dim): the mean over patches of the reconstruction, without building it."""
        n_patches, dim = self.shape
        pooled_components = self.components.reshape(self.rank, n_patches, dim).mean(axis=1)
        return np.asarray(coefs, dtype=np.float32) @ pooled_components + self.mean.reshape(n_patches, dim).mean(axis=0)


def fit_pca_basis(
    patches: np.ndarray, frames: np.ndarray, rank: int, *, patch_chunk: int = 32, rel_tol: float = 1e-6
) -> PCABasis:
    """Fit a rank-``rank`` PCA basis to ``patches[frames]`` through the frames' Gram matrix.

    Parameters
    ----------
    patches : (n_frames_total, n_patches, dim) array or memmap (float16 or float32).
    frames : the frames to fit (duplicates ignored), e.g. a split's training frames only.
    rank : requested components; capped at ``n_frames − 1`` and at the number of directions
        with variance above ``rel_tol`` × the largest (float16 rounding is not signal).
    patch_chunk : patches read per pass over the cache (two passes in all).

    Returns
    -------
    :class:`PCABasis`.
    """
    frames = np.unique(np.asarray(frames, dtype=np.int64))
    n = len(frames)
    if n < 2:
        raise ValueError("a PCA basis needs at least two frames")
    n_patches, dim = int(patches.shape[1]), int(patches.shape[2])
    mean = np.zeros((n_patches, dim), dtype=np.float32)
    gram = np.zeros((n, n), dtype=np.float64)
    for p in range(0, n_patches, patch_chunk):
        block = np.asarray(patches[frames, p : p + patch_chunk], dtype=np.float32)
        mu = block.astype(np.float64).mean(axis=0).astype(np.float32)
        mean[p : p + patch_chunk] = mu
        flat = (block - mu).reshape(n, -1)
        gram += (flat @ flat.T).astype(np.float64)
    eigval, eigvec = np.linalg.eigh(gram)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    keep = min(rank, n - 1, int(np.sum(eigval > max(eigval[0], 1e-30) * rel_tol)))
    keep = max(keep, 0)
    singular = np.sqrt(np.clip(eigval[:keep], 0, None))
    # Principal directions V = X_cᵀ U / s, built chunk by chunk: rows orthonormal.
    projector = (eigvec[:, :keep] / np.maximum(singular, 1e-30)).astype(np.float32)  # (n, keep)
    components = np.empty((keep, n_patches, dim), dtype=np.float32)
    for p in range(0, n_patches, patch_chunk):
        block = np.asarray(patches[frames, p : p + patch_chunk], dtype=np.float32) - mean[p : p + patch_chunk]
        components[:, p : p + patch_chunk] = (projector.T @ block.reshape(n, -1)).reshape(keep, -1, dim)
    return PCABasis(
        mean=mean.reshape(-1),
        components=components.reshape(keep, -1),
        singular_values=singular,
        total_variance=float(np.clip(eigval, 0, None).sum()),
        n_samples=n,
        shape=(n_patches, dim),
        frames=frames,
    )


def mean_patch_cosine(predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """(n, n_patches, dim) × (n, n_patches, dim) → (n,) mean over patches of the per-patch cosine.

    The validation score every iterative benchmark method early-stops on (the encoder's
    ``PatchTask.validate`` computes the same quantity in torch).
    """
    p = np.asarray(predicted, dtype=np.float32)
    t = np.asarray(true, dtype=np.float32)
    num = np.einsum("npd,npd->np", p, t)
    den = np.maximum(np.linalg.norm(p, axis=-1) * np.linalg.norm(t, axis=-1), 1e-12)
    return (num / den).mean(axis=1)
