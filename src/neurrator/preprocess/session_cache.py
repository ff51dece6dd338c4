"""Ingest at scale: sessions binned one at a time into per-session caches, then pooled by streaming.

``ingest_sessions`` walks a list of :class:`~neurrator.data.manifest.SessionSource` s. For each
one it either finds a cache entry made with the same file and settings, or downloads (DANDI),
reads, checks, bins and z-scores that session alone, writes it whole into its own folder
(atomically) and lets it go, so memory holds one session at a time and a corrupt file stops
the walk with an error naming it while every session before it stays cached::

    <sessions>/<file stem>-<8 hex>/
        dataset/        the session's NeuralDataset (z-scored with its own active split)
        split.json      that split (made on the session's own repeats)
        starts.npy      (n_repeats, n_frames) presentation start times, for the alignment check
        cache.json      cache key, source, session id, genotype, unit and repeat counts

``assemble_pseudo_mouse`` then builds the frame-aligned pseudo-mouse of the units a subset spec
keeps by copying one session's columns at a time into a memory-mapped ``responses.npy``; it is
identical to :func:`neurrator.preprocess.dataset.build_dataset` on the same sessions (tested).
A multi-session encoder reads the per-session caches directly instead (no pooled array at all).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurrator.core.io import atomic_dir, atomic_write_json
from neurrator.data.manifest import SessionSource
from neurrator.data.types import Session
from neurrator.preprocess.dataset import align_grids, align_sessions, build_dataset, rezscore
from neurrator.preprocess.io import (
    load_dataset,
    load_split,
    save_dataset,
    save_split,
    write_dataset,
)
from neurrator.preprocess.splits import make_split
from neurrator.preprocess.subsets import subset_mask
from neurrator.preprocess.types import NeuralDataset, Split

CACHE_FORMAT = 1
CACHE_FILE = "cache.json"


@dataclass(frozen=True)
class CachedSession:
    """One session's cache folder and its record (``cache.json``)."""

    folder: Path
    record: dict

    @property
    def session_id(self) -> str:
        return str(self.record["session_id"])

    @property
    def source(self) -> Path:
        return Path(self.record["source"])

    def dataset(self, mmap: bool = True) -> NeuralDataset:
        return load_dataset(self.folder / "dataset", mmap=mmap)

    def split(self) -> Split:
        return load_split(self.folder / "split.json")

    def starts(self) -> np.ndarray:
        return np.load(self.folder / "starts.npy", allow_pickle=False)

    def units(self) -> pd.DataFrame:
        return self.dataset().units


def folder_name(source: SessionSource) -> str:
    """A stable folder name for a source: its file stem and 8 hex digits of its location."""
    digest = hashlib.sha256(f"{source.kind}:{source.location}".encode()).hexdigest()[:8]
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in Path(source.location).stem)[:60]
    return f"{stem}-{digest}"


def cache_key(source: SessionSource, settings: dict[str, Any]) -> str:
    """SHA-256 of the source's identity and every setting that shapes the binned responses.

    A local file is identified by its resolved path, size and modification time; a DANDI asset
    by its path (assets are immutable), so a cached DANDI session is reused without a download.
    """
    identity: dict[str, Any] = {"kind": source.kind, "location": source.location}
    if source.kind == "nwb":
        path = Path(source.location)
        if path.is_file():
            stat = path.stat()
            identity.update(path=str(path.resolve()), size=stat.st_size, mtime_ns=stat.st_mtime_ns)
    blob = json.dumps({"format": CACHE_FORMAT, "source": identity, "settings": settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def find_cached(folder: Path, key: str) -> CachedSession | None:
    """The cache entry in ``folder`` if it was made with ``key``, else ``None``."""
    try:
        record = json.loads((folder / CACHE_FILE).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return CachedSession(folder, record) if record.get("key") == key else None


def cache_session(session: Session, folder: Path, *, key: str, stimulus_name: str, n_frames: int, split: str,
                  split_seed: int = 0, split_kwargs: dict | None = None, bin_rate: float = 120.0, window: int = 20,
                  scene_bins: int = 30, max_alignment_error_bins: float = 1.0) -> CachedSession:
    """Bin and z-score one session (with ``split`` made on its own repeats) into ``folder``."""
    grid = align_sessions([session], stimulus_name, n_frames, bin_rate=bin_rate,
                          max_alignment_error_bins=max_alignment_error_bins)
    own_split = make_split(split, grid.n_repeats, grid.n_frames, split_seed, **(split_kwargs or {}))
    dataset = build_dataset([session], stimulus_name, own_split, bin_rate=bin_rate, window=window, n_frames=n_frames,
                            scene_bins=scene_bins, max_alignment_error_bins=max_alignment_error_bins)
    record = {"key": key, "session_id": session.session_id, "genotype": session.genotype,
              "source": str(session.source), "is_simulated": session.is_simulated, "n_units": session.n_units,
              "n_repeats": grid.n_repeats, "n_frames": grid.n_frames, "split": own_split.name}
    with atomic_dir(folder) as tmp:
        save_dataset(dataset, tmp / "dataset")
        save_split(own_split, tmp / "split.json")
        np.save(tmp / "starts.npy", grid.starts[0])
        atomic_write_json(tmp / CACHE_FILE, record)
    return CachedSession(folder, record)


def ingest_sessions(
    sources: Sequence[SessionSource], root: Path, *, settings: dict[str, Any], read: Callable[[Path], Session],
    resolve: Callable[[SessionSource], Path], cache: Callable[[Session, Path, str], CachedSession],
    progress: bool = True,
) -> tuple[list[CachedSession], int]:
    """Cache every source under ``root``, one session in memory at a time.

    Parameters
    ----------
    read : local file → checked :class:`Session` (raises ``InputError`` naming a corrupt file).
    resolve : source → local file (downloads a DANDI asset).
    cache : (session, folder, key) → :class:`CachedSession` (see :func:`cache_session`).

    Returns the cached sessions in source order and how many were already cached.
    """
    out, hits = [], 0
    bar = tqdm(sources, desc="ingest sessions", unit="session", disable=not progress)
    for source in bar:
        bar.set_postfix_str(source.label[-40:])
        folder = Path(root) / folder_name(source)
        key = cache_key(source, settings)
        entry = find_cached(folder, key)
        if entry is None:
            session = read(resolve(source))
            entry = cache(session, folder, key)
            del session  # the next session is read only after this one is released
        else:
            hits += 1
        out.append(entry)
    bar.close()
    return out, hits


@dataclass
class PseudoMouse:
    """What :func:`assemble_pseudo_mouse` built: the dataset (memory-mapped), every regime's
    split on the pooled grid, all units with ``in_dataset``, and the sessions that joined."""

    dataset: NeuralDataset
    splits: dict[str, Split]
    units: pd.DataFrame
    chosen: list[CachedSession]

    def describe(self, caches: str = "") -> str:
        """A few lines for the terminal: sessions, units, areas, cell types, split, alignment."""
        from collections import Counter

        dataset, split = self.dataset, self.splits[self.dataset.meta["split"]]
        units = dataset.units
        areas = ", ".join(f"{a} {n}" for a, n in units["area"].value_counts().items())
        tagged = ", ".join(f"{t} {n}" for t, n in sorted(Counter(t for t in units["cell_type"] if t is not None).items()))
        kind = "pseudo-mouse of" if len(self.chosen) > 1 else "single session,"
        lines = [
            (f"{dataset.stimulus}: {kind} {len(self.chosen)} session(s), {dataset.n_units} units in the dataset "
             f"({len(self.units)} pass QC; subset '{dataset.meta['subset']}'), {dataset.n_repeats} repeats × "
             f"{dataset.n_frames} frames, {dataset.bins_per_frame} bins/frame at {dataset.bin_rate:g} Hz"),
            *([f"  {caches}"] if caches else []),
            f"  areas: {areas}",
            f"  optotagged cell types: {tagged or 'none'}",
            (f"  split {split.name}: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test samples "
             f"({split.description})"),
            f"  cross-session alignment error: max {dataset.meta['alignment']['max_error_ms']:.2f} ms",
        ]
        return "\n".join(lines)


def assemble_pseudo_mouse(
    cached: Sequence[CachedSession], folder: Path, *, stimulus_name: str, split_names: Sequence[str], active: str,
    subset: str = "all", split_seed: int = 0, split_kwargs: dict | None = None, bin_rate: float = 120.0,
    max_alignment_error_bins: float = 1.0, progress: bool = True,
) -> PseudoMouse:
    """Pool the units ``subset`` keeps into ``folder`` (a dataset folder), session by session.

    The pooled grid keeps the complete repeats every chosen session has; a session whose own
    split differs from the pooled one (other repeat count) is re-z-scored with the pooled split's
    training samples before its columns are copied.
    """
    tables = []
    for entry in cached:
        units = entry.units().copy()
        units["session_id"] = entry.session_id
        units["genotype"] = entry.record["genotype"]
        tables.append(units)
    from neurrator.preprocess.dataset import pooled_unit_table

    all_units = pooled_unit_table(tables)
    keep = subset_mask(all_units, subset, rng=np.random.default_rng(split_seed))
    bounds = np.cumsum([0] + [len(t) for t in tables])
    columns = [keep[bounds[i] : bounds[i + 1]] for i in range(len(cached))]
    chosen = [(entry, cols) for entry, cols in zip(cached, columns, strict=True) if cols.any()]
    grid = align_grids(stimulus_name, [e.starts() for e, _ in chosen], [e.session_id for e, _ in chosen],
                       [e.source for e, _ in chosen], bin_rate=bin_rate,
                       max_alignment_error_bins=max_alignment_error_bins)
    splits = {name: make_split(name, grid.n_repeats, grid.n_frames, split_seed, **(split_kwargs or {}))
              for name in split_names}
    split = splits[active]
    first = chosen[0][0].dataset()
    n_units = int(sum(cols.sum() for _, cols in chosen))
    shape = (grid.n_repeats, first.responses.shape[1], n_units)
    means, stds = [], []

    def fill(responses: np.ndarray) -> None:
        col = 0
        for entry, cols in tqdm(chosen, desc="pool sessions", unit="session", disable=not progress):
            ds = entry.dataset()
            own = entry.split()
            if not (np.array_equal(own.train, split.train) and ds.n_repeats == grid.n_repeats):
                ds = rezscore(ds, split)
            k = int(cols.sum())
            for r in range(grid.n_repeats):  # one repeat at a time keeps the copy small
                responses[r, :, col : col + k] = ds.responses[r][:, cols]
            means.append(ds.zscore.mean[cols])
            stds.append(ds.zscore.std[cols])
            col += k

    meta = {
        "split": split.name, "split_seed": split.seed,
        "sessions": [{"session_id": e.session_id, "genotype": e.record["genotype"], "source": e.record["source"],
                      "is_simulated": e.record["is_simulated"], "n_units": int(cols.sum())} for e, cols in chosen],
        "alignment": grid.report(bin_rate), "is_simulated": any(e.record["is_simulated"] for e, _ in chosen),
        "subset": subset,
    }
    units = all_units[keep]
    write_dataset(folder, shape, fill, units=units, zscore=lambda: (np.concatenate(means), np.concatenate(stds)),
                  stimulus=first.stimulus, bins_per_frame=first.bins_per_frame, window=first.window, pad=first.pad,
                  bin_rate=first.bin_rate, n_frames=grid.n_frames, meta=meta)
    return PseudoMouse(load_dataset(folder), splits, all_units.assign(in_dataset=keep), [e for e, _ in chosen])


def write_index(path: Path, cached: Sequence[CachedSession]) -> Path:
    """``sessions.json``: the cached sessions in ingest order (folders relative to ``path``)."""
    path = Path(path)
    entries = [{"folder": str(Path(e.folder).relative_to(path.parent)), **e.record} for e in cached]
    return atomic_write_json(path, {"sessions": entries})


def read_index(path: Path) -> list[CachedSession]:
    """The cached sessions listed in ``sessions.json`` (written by :func:`write_index`)."""
    from neurrator.core.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "missing; run `neurrator ingest` first")
    try:
        entries = json.loads(path.read_text())["sessions"]
        out = [CachedSession(path.parent / e.pop("folder"), e) for e in entries]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"corrupt session index: {exc}") from None
    for entry in out:
        if not (entry.folder / CACHE_FILE).is_file():
            raise InputError(entry.folder, "cached session listed in the index is missing; re-run ingest")
    return out
