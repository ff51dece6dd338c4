"""Core objects of the preprocessing layer: binned, z-scored responses, windows and splits.

The sample index used everywhere downstream is a pair ``(repeat, frame)``: the response on
repeat ``repeat`` to stimulus frame ``frame``. Targets are indexed by ``frame`` alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd


def by_frame(pairs: np.ndarray) -> np.ndarray:
    """``(repeat, frame)`` pairs (n, 2) ordered by frame, then repeat: the order test windows are
    predicted, narrated and scored in."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]


@dataclass(frozen=True)
class ZScoreStats:
    """Per-unit statistics from the training repeats only. ``mean``, ``std``: (n_units,) float32."""

    mean: np.ndarray
    std: np.ndarray


@dataclass(frozen=True)
class Split:
    """A train/validation/test partition of ``(repeat, frame)`` samples.

    Attributes
    ----------
    name : a name of :data:`neurrator.preprocess.splits.SPLIT_NAMES` (``"repeats"``,
        ``"sparse_random"``, ..., or a leaky ``"*_paper"`` definition).
    train, val, test : (n, 2) int64 arrays of ``(repeat, frame)`` pairs.
    seed : seed the partition was drawn with.
    description : one line saying what is held out (starts with ``LEAKY`` for a leaky split).
    window, bins_per_frame, jitter, test_jitter : the window geometry the split was built for.
    guard_frames : training/validation frames within this many frames of a test frame (same
        repeat) were purged.
    purged_frames : (k,) int64 frames removed from training and validation by the guard.
    overlap : measured fraction of test windows sharing a time bin with a training or
        validation window (0 for leakage-free splits; ``None``: not measured, an old file).
    leaky : True for the paper's leaky definitions.
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int
    description: str = ""
    window: int = 20
    bins_per_frame: int = 4
    jitter: int = 2
    test_jitter: int = 0
    guard_frames: int = 0
    purged_frames: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    overlap: float | None = None
    leaky: bool = False

    @property
    def train_repeats(self) -> np.ndarray:
        """Repeats that contribute training samples (z-score statistics come from these)."""
        return np.unique(self.train[:, 0])

    @property
    def train_frames(self) -> np.ndarray:
        """Frames (stimulus indices) seen in training; the retrieval caption bank draws only these."""
        return np.unique(self.train[:, 1])

    @property
    def test_frames(self) -> np.ndarray:
        """Frames (stimulus indices) of the test windows."""
        return np.unique(self.test[:, 1])

    def with_overlap(self, overlap: float) -> Split:
        return replace(self, overlap=float(overlap))

    def with_description(self, description: str) -> Split:
        return replace(self, description=description)

    def leakage(self) -> dict:
        """The guard record written into ``split.json`` and every benchmark table."""
        return {
            "leaky": self.leaky, "overlap": self.overlap, "guard_frames": self.guard_frames,
            "purged_frames": [int(f) for f in self.purged_frames], "window": self.window,
            "bins_per_frame": self.bins_per_frame, "jitter": self.jitter, "test_jitter": self.test_jitter,
        }

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "seed": self.seed,
            "description": self.description,
            **self.leakage(),
            "train": self.train.tolist(),
            "val": self.val.tolist(),
            "test": self.test.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        as_pairs = lambda x: np.asarray(x, dtype=np.int64).reshape(-1, 2)
        geometry = {k: int(d[k]) for k in ("window", "bins_per_frame", "jitter", "test_jitter", "guard_frames") if k in d}
        return cls(
            name=d["name"],
            train=as_pairs(d["train"]),
            val=as_pairs(d["val"]),
            test=as_pairs(d["test"]),
            seed=int(d["seed"]),
            description=d.get("description", ""),
            purged_frames=np.asarray(d.get("purged_frames", []), dtype=np.int64),
            overlap=None if d.get("overlap") is None else float(d["overlap"]),
            leaky=bool(d.get("leaky", False)),
            **geometry,
        )


@dataclass(frozen=True)
class NeuralDataset:
    """Binned, z-scored responses of one stimulus, from which windows are cut as views.

    Attributes
    ----------
    stimulus : stimulus name, e.g. ``"natural_movie_one"``.
    responses : (n_repeats, n_bins + 2 * pad, n_units) float32, z-scored with ``zscore`` and
        zero-padded by ``pad`` bins at both ends so that every window exists.
    bins_per_frame : 4 for 30 Hz movies at 120 Hz.
    window : window length in bins (20).
    pad : padding in bins on each side of the time axis.
    units : DataFrame indexed by unit_id, in column order of ``responses`` (area, probe, depth,
        cell_type, session_id, ...).
    zscore : the statistics used (from training repeats only).
    bin_rate : Hz (120).
    n_frames : number of stimulus frames (or scene images).
    """

    stimulus: str
    responses: np.ndarray
    bins_per_frame: int
    window: int
    pad: int
    units: pd.DataFrame
    zscore: ZScoreStats
    bin_rate: float = 120.0
    n_frames: int = 0
    meta: dict = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return int(self.responses.shape[2])

    @property
    def n_repeats(self) -> int:
        return int(self.responses.shape[0])

    @property
    def unit_ids(self) -> np.ndarray:
        return self.units.index.to_numpy()

    def window_start(self, frame: np.ndarray | int) -> np.ndarray:
        """Index (into the padded time axis) of the first bin of the window centred on ``frame``."""
        centre = np.asarray(frame) * self.bins_per_frame + self.bins_per_frame // 2
        return centre - self.window // 2 + self.pad

    def windows_view(self) -> np.ndarray:
        """All windows as a strided view: (n_repeats, n_positions, n_units, window). No copy."""
        return np.lib.stride_tricks.sliding_window_view(self.responses, self.window, axis=1)

    def windows(self, pairs: np.ndarray, shift: int = 0) -> np.ndarray:
        """Gather windows for ``(repeat, frame)`` pairs: (n, window, n_units) float32 (a copy).

        ``shift`` moves every window by that many bins (jitter augmentation, time-shift controls).
        """
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        start = self.window_start(pairs[:, 1]) + shift
        start = np.clip(start, 0, self.responses.shape[1] - self.window)
        idx = start[:, None] + np.arange(self.window)[None, :]
        return self.responses[pairs[:, 0][:, None], idx]
