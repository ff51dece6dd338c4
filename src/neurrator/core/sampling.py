"""Choosing ``k`` of ``n`` items: evenly spread (deterministic) or a seeded random subset."""

from __future__ import annotations

import numpy as np


def evenly_spaced(n: int, k: int | None) -> np.ndarray:
    """Sorted indices of ``k`` items spread evenly over ``n`` (all of them if ``k`` is 0, ``None`` or ≥ n)."""
    if not k or k <= 0 or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


def seeded_subset(n: int, k: int | None, seed: int) -> np.ndarray:
    """Sorted indices of ``k`` items of ``n`` drawn without replacement (all if ``k`` is ``None`` or ≥ n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False))
