"""neurrator.preprocess: binning at 120 Hz, z-scoring, windows, paper splits, unit subsets.

Main entry points: :func:`~neurrator.preprocess.dataset.build_dataset` (one session or a
frame-aligned pseudo-mouse), :func:`~neurrator.preprocess.splits.make_split`,
:func:`~neurrator.preprocess.subsets.subset_mask` and the I/O in :mod:`neurrator.preprocess.io`.
"""

from neurrator.preprocess.dataset import align_sessions, build_dataset, rezscore, select_units
from neurrator.preprocess.io import load_dataset, load_split, save_dataset, save_split
from neurrator.preprocess.splits import SPLIT_NAMES, make_split
from neurrator.preprocess.subsets import subset_mask

__all__ = [
    "SPLIT_NAMES",
    "align_sessions",
    "build_dataset",
    "load_dataset",
    "load_split",
    "make_split",
    "rezscore",
    "save_dataset",
    "save_split",
    "select_units",
    "subset_mask",
]
