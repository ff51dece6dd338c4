"""Saving and loading :class:`NeuralDataset` and :class:`Split` objects.

A dataset folder holds three files::

    responses.npy   (n_repeats, n_bins + 2*pad, n_units) float32, z-scored, padded
    units.parquet   one row per unit (index ``unit_id``), in column order of ``responses``
    meta.json       stimulus, bins_per_frame, window, pad, bin_rate, n_frames, z-score stats, meta

Folders are written whole through :func:`neurrator.core.atomic_dir`, so a crash never leaves a
half-written dataset behind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir, atomic_path, atomic_write_json
from neurrator.preprocess.types import NeuralDataset, Split, ZScoreStats

FORMAT_VERSION = 1
_FILES = ("responses.npy", "units.parquet", "meta.json")


def save_dataset(ds: NeuralDataset, folder: str | Path) -> Path:
    """Write ``ds`` to ``folder`` (replacing it whole). Returns the folder."""

    def fill(out: np.ndarray) -> None:
        out[...] = ds.responses

    return write_dataset(
        folder, ds.responses.shape, fill, units=ds.units, zscore=lambda: (ds.zscore.mean, ds.zscore.std),
        stimulus=ds.stimulus, bins_per_frame=ds.bins_per_frame, window=ds.window, pad=ds.pad, bin_rate=ds.bin_rate,
        n_frames=ds.n_frames, meta=ds.meta,
    )


def write_dataset(
    folder: str | Path, shape: tuple[int, int, int], fill: Callable[[np.ndarray], None], *, units: pd.DataFrame,
    zscore: Callable[[], tuple[np.ndarray, np.ndarray]], stimulus: str, bins_per_frame: int, window: int, pad: int,
    bin_rate: float, n_frames: int, meta: dict,
) -> Path:
    """Write a dataset folder whose responses are produced piecewise, without holding them.

    ``fill(out)`` writes the (n_repeats, n_time, n_units) float32 responses into ``out``, a
    memory-mapped ``responses.npy``; ``zscore()`` is called afterwards for the (mean, std) of
    the units. The folder is replaced whole (:func:`neurrator.core.atomic_dir`).
    """
    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        out = np.lib.format.open_memmap(tmp / "responses.npy", mode="w+", dtype=np.float32, shape=tuple(shape))
        fill(out)
        out.flush()
        del out
        mean, std = zscore()
        _units_for_parquet(units).to_parquet(tmp / "units.parquet")
        atomic_write_json(tmp / "meta.json", {
            "format_version": FORMAT_VERSION, "stimulus": stimulus, "bins_per_frame": int(bins_per_frame),
            "window": int(window), "pad": int(pad), "bin_rate": float(bin_rate), "n_frames": int(n_frames),
            "shape": [int(x) for x in shape],
            "zscore_mean": np.asarray(mean, dtype=np.float64).tolist(),
            "zscore_std": np.asarray(std, dtype=np.float64).tolist(),
            "meta": meta,
        })
    return folder


def load_dataset(folder: str | Path, mmap: bool = True) -> NeuralDataset:
    """Load a dataset written by :func:`save_dataset`.

    With ``mmap=True`` the responses are a read-only memory map (no copy in RAM).
    Raises :class:`InputError` naming the file if anything is missing or corrupt.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "dataset folder not found")
    for name in _FILES:
        if not (folder / name).is_file():
            raise InputError(folder / name, "missing from the dataset folder")
    try:
        meta = json.loads((folder / "meta.json").read_text())
        shape = tuple(meta["shape"])
        fields = {k: meta[k] for k in ("stimulus", "bins_per_frame", "window", "pad", "bin_rate", "n_frames")}
        mean = np.asarray(meta["zscore_mean"], dtype=np.float32)
        std = np.asarray(meta["zscore_std"], dtype=np.float32)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(folder / "meta.json", f"corrupt dataset metadata: {exc}") from None
    try:
        responses = np.load(folder / "responses.npy", mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(folder / "responses.npy", f"not a readable .npy array: {exc}") from None
    if responses.shape != shape or responses.dtype != np.float32:
        raise InputError(
            folder / "responses.npy",
            f"expected float32 array of shape {shape}, found {responses.dtype} {responses.shape}",
        )
    try:
        units = pd.read_parquet(folder / "units.parquet")
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise InputError(folder / "units.parquet", f"not a readable parquet table: {exc}") from None
    if len(units) != shape[2] or len(mean) != shape[2] or len(std) != shape[2]:
        raise InputError(folder, f"units table has {len(units)} rows but responses have {shape[2]} units")
    if "cell_type" in units:
        units["cell_type"] = units["cell_type"].astype(object).where(units["cell_type"].notna(), None)
    return NeuralDataset(
        responses=responses,
        units=units,
        zscore=ZScoreStats(mean=mean, std=std),
        meta=meta.get("meta", {}),
        **fields,
    )


def save_split(split: Split, path: str | Path) -> Path:
    """Write ``split`` as JSON (atomically)."""
    return atomic_write_json(path, split.to_dict(), indent=None)


def load_split(path: str | Path) -> Split:
    """Read a split written by :func:`save_split`; :class:`InputError` if missing or corrupt."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "split file not found")
    try:
        return Split.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(path, f"corrupt split file: {exc}") from None


def save_units(units: pd.DataFrame, path: str | Path) -> Path:
    """Write a units table (index ``unit_id``) to a parquet file atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        _units_for_parquet(units).to_parquet(tmp)
    return path


def _units_for_parquet(units: pd.DataFrame) -> pd.DataFrame:
    """Parquet needs one type per column: object columns mixing str and None stay str|null."""
    out = units.copy()
    out.index = out.index.astype(np.int64)
    out.index.name = "unit_id"
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].astype(object).where(out[col].notna(), None).map(lambda v: v if v is None else str(v))
    return out
