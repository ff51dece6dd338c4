"""Embedding-level metrics of predicted patch tensors (paper Tables A2, A3; CEBRA's protocol).

**Readouts.** Every identification metric compares a window's predicted patch tensor with the
target tensor of each candidate frame by cosine. The headline readout uses the *full* patch
tensors (n_patches × dim, the spatial layout kept) centred on the mean training-frame target
(:func:`centred_cosine`); the *pooled* readout (mean over patches first, centred on the pooled
mean training target) is a second column. One readout serves every method, kNN methods
included (their prediction is the mean target of their neighbours).

- :func:`identify`: rank of the true frame among a candidate set per window → R@1, R@10,
  median rank and the hit rate within a tolerance (CEBRA: ±1 s), each with its chance level
  computed from that window's candidate set (:class:`Identification`). Candidate sets:
  every stimulus frame (A2/A3), the frames of the true shot (within-shot identification: a
  shot lookup cannot pass it), or the held-out frames only (zero-shot identification).
- :func:`linear_cka`: linear centred kernel alignment of paired rows (Kornblith et al. 2019),
  through Gram matrices so full patch tensors work; its chance level is computed by permuting
  the pairing (:func:`neurrator.evaluate.stats.permutation_chance`).
- :func:`knn_purity`: neighbourhood overlap, the fraction of each window's k nearest test
  windows in predicted space that are also among its k nearest in true-target space. (The
  paper does not define its "kNN purity"; this is our definition, stated where we print it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurrator.core.linalg import pool_patches, unit_rows


def _as_tensor(x: np.ndarray) -> np.ndarray:
    """(n, d) pooled rows → (n, 1, d); (n, P, D) unchanged."""
    return x[:, None, :] if x.ndim == 2 else x


def centred_cosine(a: np.ndarray, b: np.ndarray, mean: np.ndarray | None = None, *, patch_chunk: int = 64) -> np.ndarray:
    """Cosine similarity (n, m) between the rows of ``a`` (n, P, D) and ``b`` (m, P, D), both
    minus ``mean`` (P, D) first, accumulated a chunk of patches at a time (memmaps work).

    2-D inputs (n, d) are treated as one patch (pooled readout).
    """
    a, b = _as_tensor(a), _as_tensor(b)
    mean = np.zeros(a.shape[1:], dtype=np.float32) if mean is None else np.asarray(mean, dtype=np.float32)
    mean = mean.reshape(a.shape[1:])
    n, m, n_patches = len(a), len(b), a.shape[1]
    dots = np.zeros((n, m), dtype=np.float64)
    norm_a, norm_b = np.zeros(n), np.zeros(m)
    for p in range(0, n_patches, patch_chunk):
        mu = mean[p : p + patch_chunk].reshape(-1)
        x = np.asarray(a[:, p : p + patch_chunk], dtype=np.float32).reshape(n, -1) - mu
        y = np.asarray(b[:, p : p + patch_chunk], dtype=np.float32).reshape(m, -1) - mu
        dots += x @ y.T
        norm_a += np.einsum("ij,ij->i", x, x)
        norm_b += np.einsum("ij,ij->i", y, y)
    return (dots / np.maximum(np.sqrt(norm_a)[:, None] * np.sqrt(norm_b)[None, :], 1e-12)).astype(np.float32)


@dataclass
class Identification:
    """Per-window identification of the true frame among a candidate set.

    Attributes (all (n,) arrays, one entry per window)
    ----------
    rank : rank of the true frame (1 = most similar; ties count against the prediction).
    retrieved : the most similar candidate frame.
    n_candidates : size of the window's candidate set.
    r1, r10, within_tol : hits (1.0/0.0) of R@1, R@10 and of "retrieved within ±tolerance frames".
    r1_chance, r10_chance, within_tol_chance, rank_chance : what a uniformly random candidate
        scores on that window (from its candidate set).
    tolerance_frames : the tolerance in frames.
    """

    rank: np.ndarray
    retrieved: np.ndarray
    n_candidates: np.ndarray
    r1: np.ndarray
    r10: np.ndarray
    within_tol: np.ndarray
    r1_chance: np.ndarray
    r10_chance: np.ndarray
    within_tol_chance: np.ndarray
    rank_chance: np.ndarray
    tolerance_frames: int

    def summary(self) -> dict:
        """Means of every per-window quantity, and the median rank (with its chance)."""
        return {
            "r1": float(self.r1.mean()), "r10": float(self.r10.mean()), "within_tol": float(self.within_tol.mean()),
            "median_rank": float(np.median(self.rank)), "r1_chance": float(self.r1_chance.mean()),
            "r10_chance": float(self.r10_chance.mean()), "within_tol_chance": float(self.within_tol_chance.mean()),
            "median_rank_chance": float(np.median(self.rank_chance)), "n_windows": len(self.rank),
            "n_candidates": float(self.n_candidates.mean()), "tolerance_frames": self.tolerance_frames,
        }


def identify(
    similarity: np.ndarray,
    frames: np.ndarray,
    candidate_frames: np.ndarray,
    *,
    tolerance_frames: int = 0,
    allowed: np.ndarray | None = None,
) -> Identification:
    """Identify each window's frame among candidates from a similarity matrix.

    Parameters
    ----------
    similarity : (n, m) window × candidate similarity (e.g. :func:`centred_cosine`).
    frames : (n,) true frame of each window; must be among its allowed candidates.
    candidate_frames : (m,) frame of each candidate column.
    tolerance_frames : a retrieved frame within this many frames of the true one is a hit of
        ``within_tol`` (CEBRA's ±1 s is ``round(frame_rate)``).
    allowed : optional (n, m) bool, each window's own candidate set (default: every column).
    """
    frames = np.asarray(frames, dtype=np.int64)
    candidate_frames = np.asarray(candidate_frames, dtype=np.int64)
    n, m = similarity.shape
    allowed = np.ones((n, m), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool)
    is_true = candidate_frames[None, :] == frames[:, None]
    if not (is_true & allowed).any(axis=1).all():
        raise ValueError("every window's true frame must be among its candidate frames")
    sims = np.where(allowed, similarity, -np.inf)
    true_sim = np.where(is_true & allowed, sims, -np.inf).max(axis=1)
    rank = ((sims >= true_sim[:, None]) & allowed).sum(axis=1)
    retrieved = candidate_frames[np.argmax(sims, axis=1)]
    m_i = allowed.sum(axis=1).astype(np.float64)
    near = (np.abs(candidate_frames[None, :] - frames[:, None]) <= tolerance_frames) & allowed
    return Identification(
        rank=rank.astype(np.int64), retrieved=retrieved, n_candidates=m_i.astype(np.int64),
        r1=(rank <= 1).astype(np.float64), r10=(rank <= 10).astype(np.float64),
        within_tol=(np.abs(retrieved - frames) <= tolerance_frames).astype(np.float64),
        r1_chance=1.0 / m_i, r10_chance=np.minimum(10, m_i) / m_i, within_tol_chance=near.sum(axis=1) / m_i,
        rank_chance=(m_i + 1) / 2, tolerance_frames=int(tolerance_frames),
    )


def tolerance_frames(frame_rate: float | None, seconds: float) -> int:
    """Frames within ``seconds`` at ``frame_rate`` (0 for an image set: only the exact image counts)."""
    return round(frame_rate * seconds) if frame_rate else 0


def same_group(frames: np.ndarray, candidate_frames: np.ndarray, group_of_frame: np.ndarray) -> np.ndarray:
    """(n, m) bool: candidate ``j`` lies in the same group (shot, block) as window ``i``'s frame."""
    g = np.asarray(group_of_frame)
    return g[np.asarray(candidate_frames)][None, :] == g[np.asarray(frames)][:, None]


# ---- CKA and kNN purity --------------------------------------------------------------------------


def centred_gram(x: np.ndarray, *, patch_chunk: int = 64) -> np.ndarray:
    """(n, n) float64 Gram matrix of the column-centred, flattened rows of ``x`` ((n, d) or (n, P, D))."""
    x = _as_tensor(np.asarray(x))
    n = len(x)
    gram = np.zeros((n, n), dtype=np.float64)
    for p in range(0, x.shape[1], patch_chunk):
        block = np.asarray(x[:, p : p + patch_chunk], dtype=np.float64).reshape(n, -1)
        block = block - block.mean(axis=0)
        gram += block @ block.T
    return gram


def cka_from_grams(k: np.ndarray, l: np.ndarray) -> float:
    """Linear CKA from two centred Gram matrices (n, n). 0 if either is zero."""
    norm = np.sqrt((k * k).sum()) * np.sqrt((l * l).sum())
    return float((k * l).sum() / norm) if norm > 0 else 0.0


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x`` and ``y`` ((n, d) or (n, P, D)), rows paired. 0 if either is constant."""
    if len(x) != len(y):
        raise ValueError(f"CKA needs paired rows, got {len(x)} and {len(y)}")
    return cka_from_grams(centred_gram(x), centred_gram(y))


def knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """(n, d) or (n, P, D) → (n, k) indices of each row's k nearest other rows by cosine."""
    u = unit_rows(x)
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, kth=k - 1, axis=1)[:, :k]


def purity_of_sets(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of shared entries between the rows of two (n, k) neighbour-index arrays."""
    k = a.shape[1]
    shared = (a[:, :, None] == b[:, None, :]).any(axis=2).sum(axis=1)
    return float(shared.mean() / k)


def knn_purity(predicted: np.ndarray, true: np.ndarray, *, k: int = 10) -> float:
    """Mean fraction of shared k-nearest neighbours between ``predicted`` and ``true`` (paired rows)."""
    k = min(k, len(predicted) - 1)
    if k < 1:
        return float("nan")
    return purity_of_sets(knn_sets(predicted, k), knn_sets(true, k))


def pooled(x: np.ndarray) -> np.ndarray:
    """(n, P, D) → (n, D) mean over patches (2-D input unchanged)."""
    return pool_patches(x) if np.ndim(x) == 3 else np.asarray(x, dtype=np.float32)


def identification_summary(predicted: np.ndarray, frames: np.ndarray, targets: np.ndarray, *,
                           mean_target: np.ndarray | None = None, frame_rate: float | None = 30.0,
                           tolerance_s: float = 1.0) -> dict:
    """The headline readout in one call: identify each window's frame among every frame of
    ``targets`` (n_frames, n_patches, dim) by cosine between full patch tensors centred on
    ``mean_target`` (the mean training-frame target), plus linear CKA with the true targets.

    Returns :meth:`Identification.summary` keys and ``cka``. Chance levels are computed from
    the candidate set; CKA's chance needs :func:`neurrator.evaluate.stats.permutation_chance`.
    """
    frames = np.asarray(frames, dtype=np.int64)
    sims = centred_cosine(predicted, targets, mean_target)
    out = identify(sims, frames, np.arange(len(targets)), tolerance_frames=tolerance_frames(frame_rate, tolerance_s))
    return {**out.summary(), "cka": linear_cka(predicted, np.asarray(targets[frames], dtype=np.float32))}
