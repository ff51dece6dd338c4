"""Embedding-level metrics of predicted patch tensors (paper Tables A2, A3; CEBRA's protocol).

All metrics work on *pooled* patch tensors, the mean over patches, (n, dim): linear CKA and
the retrieval cosines on full 576 × 1024 tensors would cost n² × 590k operations, and pooling
is what the paper's "pooled cosine" retrieval uses.

- :func:`linear_cka`: linear centred kernel alignment between predictions and true targets
  of the same windows (Kornblith et al. 2019). 1 for identical up to rotation and scale.
- :func:`knn_purity`: neighbourhood overlap, the fraction of each window's k nearest test
  windows in predicted space that are also among its k nearest in true-target space. (The
  paper does not define its "kNN purity"; this is our definition, stated everywhere we print it.)
- :func:`retrieval_ranks`: rank of the true frame among all candidate frames by cosine
  between the pooled prediction and each frame's pooled target. R@1, R@10, median rank.
- frame identification within a tolerance (CEBRA: the retrieved frame within 1 s, i.e. 30
  frames of a 30 Hz movie, counts as correct).
"""

from __future__ import annotations

import numpy as np


def pool_patches(patches: np.ndarray, *, batch_size: int = 256) -> np.ndarray:
    """(n, n_patches, dim) → (n, dim) float32 mean over patches, in batches (works on memmaps)."""
    n = patches.shape[0]
    out = np.empty((n, patches.shape[-1]), dtype=np.float32)
    for start in range(0, n, batch_size):
        out[start : start + batch_size] = np.asarray(patches[start : start + batch_size], dtype=np.float32).mean(axis=1)
    return out


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA of ``x`` (n, p) and ``y`` (n, q), rows paired. 0 if either is constant."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA needs paired rows, got {x.shape[0]} and {y.shape[0]}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    if x.shape[0] <= max(x.shape[1], y.shape[1]):
        k, l = x @ x.T, y @ y.T
        hsic, norm_x, norm_y = (k * l).sum(), np.sqrt((k * k).sum()), np.sqrt((l * l).sum())
    else:
        hsic = np.square(y.T @ x).sum()
        norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
    if norm_x == 0 or norm_y == 0:
        return 0.0
    return float(hsic / (norm_x * norm_y))


def _knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """(n, d) → (n, k) indices of each row's k nearest other rows by cosine."""
    u = _unit_rows(np.asarray(x, dtype=np.float32))
    sims = u @ u.T
    np.fill_diagonal(sims, -np.inf)
    return np.argpartition(-sims, kth=k - 1, axis=1)[:, :k]


def knn_purity(predicted: np.ndarray, true: np.ndarray, *, k: int = 10) -> float:
    """Mean fraction of shared k-nearest neighbours between ``predicted`` and ``true`` (n, d).

    Chance level is about ``k / (n − 1)``.
    """
    n = predicted.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return float("nan")
    a, b = _knn_sets(predicted, k), _knn_sets(true, k)
    shared = [len(np.intersect1d(a[i], b[i], assume_unique=True)) for i in range(n)]
    return float(np.mean(shared) / k)


def retrieval_ranks(
    predicted: np.ndarray,
    candidates: np.ndarray,
    true_index: np.ndarray,
    *,
    center: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Rank of the true candidate for each prediction, by cosine.

    Parameters
    ----------
    predicted : (n, d) pooled predictions.
    candidates : (m, d) pooled targets of every candidate frame.
    true_index : (n,) row of ``candidates`` that is each prediction's true frame.
    center : subtract the candidates' mean from both sides first.

    Returns
    -------
    ranks : (n,) int, 1 = the true frame is the most similar candidate.
    best : (n,) int, the row of the most similar candidate (the retrieved frame).
    """
    predicted = np.asarray(predicted, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    if center:
        mu = candidates.mean(axis=0, keepdims=True)
        predicted, candidates = predicted - mu, candidates - mu
    sims = _unit_rows(predicted) @ _unit_rows(candidates).T
    true_sim = sims[np.arange(len(sims)), true_index]
    # Ties count against the prediction: a constant prediction ranks last, not first.
    ranks = (sims >= true_sim[:, None]).sum(axis=1)
    return ranks.astype(np.int64), sims.argmax(axis=1).astype(np.int64)


def within_tolerance(retrieved: np.ndarray, true: np.ndarray, tolerance: int) -> np.ndarray:
    """(n,) bool: the retrieved frame is within ``tolerance`` frames of the true one."""
    return np.abs(np.asarray(retrieved) - np.asarray(true)) <= tolerance


def chance_within_tolerance(true: np.ndarray, n_candidates: int, tolerance: int) -> float:
    """Expected hit rate of a uniformly random candidate frame (edges have fewer neighbours)."""
    true = np.asarray(true)
    low = np.maximum(true - tolerance, 0)
    high = np.minimum(true + tolerance, n_candidates - 1)
    return float(np.mean((high - low + 1) / n_candidates))


def tolerance_frames(frame_rate: float | None, seconds: float) -> int:
    """Frames within ``seconds`` at ``frame_rate`` (0 for an image set: only the exact image counts)."""
    return round(frame_rate * seconds) if frame_rate else 0


def embedding_metrics(
    predicted: np.ndarray,
    frames: np.ndarray,
    frame_targets: np.ndarray,
    *,
    frame_rate: float | None = 30.0,
    tolerance_s: float = 1.0,
    knn_k: int = 10,
    center: bool = True,
    candidate_frames: np.ndarray | None = None,
) -> dict:
    """Table-A2/A3 metrics of pooled predictions.

    Parameters
    ----------
    predicted : (n, d) pooled predicted patches of n test windows.
    frames : (n,) true frame of each window.
    frame_targets : (n_frames, d) pooled targets of every stimulus frame.
    frame_rate : Hz of the movie; ``None`` for an image set.
    tolerance_s : frame-identification tolerance in seconds (CEBRA: 1 s).
    knn_k : k of the kNN purity.
    center : centre the retrieval cosine on the candidates' mean.
    candidate_frames : (m,) frames retrieval chooses among; default every stimulus frame.

    Returns
    -------
    dict with ``cka``, ``knn_purity``, ``knn_purity_chance``, ``r1``, ``r10``, ``median_rank``,
    ``mean_rank``, ``frame_id_within_tol``, their chance levels, ``n_windows``, ``n_candidates``,
    ``tolerance_frames``, and ``ranks`` / ``retrieved`` (n,) arrays for per-window tables.
    """
    frames = np.asarray(frames, dtype=np.int64)
    candidate_frames = np.arange(len(frame_targets)) if candidate_frames is None else np.asarray(candidate_frames)
    position = {int(f): i for i, f in enumerate(candidate_frames)}
    if any(int(f) not in position for f in np.unique(frames)):
        raise ValueError("every test frame must be among the candidate frames")
    true_index = np.array([position[int(f)] for f in frames], dtype=np.int64)
    candidates = np.asarray(frame_targets, dtype=np.float32)[candidate_frames]
    true = candidates[true_index]
    ranks, best = retrieval_ranks(predicted, candidates, true_index, center=center)
    retrieved = candidate_frames[best]
    tol = tolerance_frames(frame_rate, tolerance_s)
    m = len(candidate_frames)
    n = len(frames)
    return {
        "n_windows": n,
        "n_candidates": m,
        "cka": linear_cka(predicted, true),
        "knn_purity": knn_purity(predicted, true, k=knn_k),
        "knn_k": knn_k,
        "knn_purity_chance": min(knn_k, n - 1) / max(n - 1, 1),
        "r1": float(np.mean(ranks <= 1)),
        "r10": float(np.mean(ranks <= 10)),
        "median_rank": float(np.median(ranks)),
        "mean_rank": float(np.mean(ranks)),
        "r1_chance": 1.0 / m,
        "r10_chance": min(10, m) / m,
        "median_rank_chance": (m + 1) / 2,
        "tolerance_frames": tol,
        "frame_id_within_tol": float(np.mean(within_tolerance(retrieved, frames, tol))),
        "frame_id_within_tol_chance": chance_within_tolerance(frames, m, tol) if tol else 1.0 / m,
        "ranks": ranks,
        "retrieved": retrieved,
    }
