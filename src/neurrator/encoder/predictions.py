"""Predicted patches of test windows, saved with what they were predicted from.

A :class:`Predictions` is what the encoder hands to the narrator and to the evaluation: one
row of predicted patches per ``(repeat, frame)`` window, the units the encoder saw, and which
checkpoint made them. ``save(folder)`` writes three files, ``load(folder)`` reads them back and
checks that they agree; a bad file is an :class:`~neurrator.core.errors.InputError` naming it.

Files
-----
``predictions.npy``  (n, n_patches, dim) float16 predicted patches (loaded as a memmap)
``windows.npy``      (n, 2) int64 ``(repeat, frame)`` of each row
``predictions.json`` ``checkpoint``, ``unit_subset``, ``n_units``, ``space_id``, ``shape``
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json

PATCHES_FILE = "predictions.npy"
WINDOWS_FILE = "windows.npy"
META_FILE = "predictions.json"


@dataclass(frozen=True)
class Predictions:
    """Predicted patches of ``n`` windows.

    Attributes
    ----------
    patches : (n, n_patches, dim) float16 (a memmap after :meth:`load`).
    pairs : (n, 2) int64 ``(repeat, frame)`` of each row.
    checkpoint : id of the encoder checkpoint that predicted them (e.g. its weights' SHA-256).
    space_id : vision space the patches live in.
    unit_subset : the units the encoder saw (a ``preprocess.subsets`` spec, ``"all"`` for all).
    n_units : how many units that is.
    """

    patches: np.ndarray
    pairs: np.ndarray
    checkpoint: str
    space_id: str
    unit_subset: str = "all"
    n_units: int = 0

    def __post_init__(self) -> None:
        problem = _shape_problem(self.patches, self.pairs)
        if problem:
            raise ValueError(problem)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def frames(self) -> np.ndarray:
        """(n,) int64 stimulus frame of each row."""
        return self.pairs[:, 1]

    def save(self, folder: str | Path) -> list[Path]:
        """Write the three files into ``folder`` (each atomically); returns their paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, array in ((PATCHES_FILE, np.asarray(self.patches, dtype=np.float16)),
                            (WINDOWS_FILE, np.asarray(self.pairs, dtype=np.int64))):
            with atomic_path(folder / name) as tmp:
                np.save(tmp, array)
            paths.append(folder / name)
        meta = {"checkpoint": self.checkpoint, "space_id": self.space_id, "unit_subset": self.unit_subset,
                "n_units": int(self.n_units), "shape": list(self.patches.shape), "dtype": "float16"}
        paths.append(atomic_write_json(folder / META_FILE, meta))
        return paths

    @classmethod
    def load(cls, folder: str | Path) -> Predictions:
        """Read what :meth:`save` wrote; :class:`InputError` naming the file that is missing or wrong."""
        folder = Path(folder)
        meta_path = folder / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
            checkpoint, space_id, shape = str(meta["checkpoint"]), str(meta["space_id"]), list(meta["shape"])
            unit_subset, n_units = str(meta["unit_subset"]), int(meta["n_units"])
        except FileNotFoundError:
            raise InputError(meta_path, "missing; re-run `neurrator narrate`") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InputError(meta_path, f"corrupt predictions metadata: {exc}") from None
        patches = _load_npy(folder / PATCHES_FILE, mmap=True)
        pairs = _load_npy(folder / WINDOWS_FILE, mmap=False)
        if list(patches.shape) != shape or patches.dtype != np.float16:
            raise InputError(folder / PATCHES_FILE, f"expected {shape} float16 as {META_FILE} records, "
                                                    f"found {list(patches.shape)} {patches.dtype}")
        problem = _shape_problem(patches, pairs)
        if problem:
            raise InputError(folder / WINDOWS_FILE, problem)
        return cls(patches=patches, pairs=pairs.astype(np.int64, copy=False), checkpoint=checkpoint,
                   space_id=space_id, unit_subset=unit_subset, n_units=n_units)


def _load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(path, "missing; re-run `neurrator narrate`") from None
    except (OSError, ValueError) as exc:
        raise InputError(path, f"not a readable .npy array: {exc}") from None


def _shape_problem(patches: np.ndarray, pairs: np.ndarray) -> str | None:
    if patches.ndim != 3:
        return f"predicted patches must be (n, n_patches, dim), got shape {patches.shape}"
    if pairs.ndim != 2 or pairs.shape[1] != 2 or len(pairs) != len(patches) or not np.issubdtype(pairs.dtype, np.integer):
        return f"expected ({len(patches)}, 2) integer (repeat, frame) rows, got {pairs.shape} {pairs.dtype}"
    return None
