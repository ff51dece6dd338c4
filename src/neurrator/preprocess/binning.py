"""Vectorised spike binning aligned to each stimulus presentation's own start time.

Every presentation (one movie frame, or one natural-scenes image) gets ``bins_per_frame`` bins
of width ``1 / bin_rate`` starting at its recorded ``start_time``, so clock drift and frame-time
jitter never accumulate over a 30 s movie. A spike is assigned to the latest presentation that
started at or before it; spikes later than that presentation's last bin (e.g. during a blank)
are dropped.

The work is a table look-up per spike and a run-length count of (unit, bin) keys, with no
Python loop over units or presentations, and the dense output is touched only where a spike
fell. ``benchmarks/bench_binning.py`` compares it with a per-unit
``np.histogram`` loop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurrator.data.types import SpikeTrains


def presentation_grid(presentations: pd.DataFrame, n_frames: int, n_repeats: int | None = None) -> np.ndarray:
    """Start times of complete repeats laid out as a (repeat, frame) grid.

    Parameters
    ----------
    presentations : columns ``start_time``, ``frame`` (−1 = blank, ignored) and ``repeat``.
    n_frames : number of stimulus frames (or images); frames ``>= n_frames`` are ignored.
    n_repeats : keep only the first ``n_repeats`` complete repeats (all if ``None``).

    Returns
    -------
    starts : (n_complete_repeats, n_frames) float64 seconds. A repeat is complete when every frame
        ``0..n_frames-1`` was shown in it; incomplete repeats are dropped.
    """
    p = presentations[(presentations["frame"] >= 0) & (presentations["frame"] < n_frames)]
    grid = p.pivot_table(index="repeat", columns="frame", values="start_time", aggfunc="first")
    grid = grid.reindex(columns=range(n_frames)).dropna(axis=0, how="any").sort_index()
    starts = grid.to_numpy(dtype=np.float64)
    return starts if n_repeats is None else starts[:n_repeats]


def bin_spikes(
    spikes: SpikeTrains,
    starts: np.ndarray,
    *,
    bin_rate: float = 120.0,
    bins_per_frame: int = 4,
    pad: int = 0,
    out: np.ndarray | None = None,
    chunk_spikes: int = 2_000_000,
) -> np.ndarray:
    """Count spikes in bins aligned to each presentation's start time.

    Parameters
    ----------
    spikes : spike trains of ``n_units`` units.
    starts : (n_repeats, n_frames) float64 presentation start times (see :func:`presentation_grid`).
    bin_rate : bins per second (120 Hz → 4 bins per 33 ms movie frame).
    bins_per_frame : bins counted after each presentation's start.
    pad : zero bins added before and after each repeat's time axis.
    out : optional (n_repeats, n_frames * bins_per_frame + 2 * pad, n_units) float32 array (or a
        view into a wider array) to fill; allocated if ``None``.
    chunk_spikes : spikes processed at once (whole units); bounds scratch memory to about
        ``50 * chunk_spikes`` bytes.

    Returns
    -------
    counts : (n_repeats, n_frames * bins_per_frame + 2 * pad, n_units) float32; bin
        ``pad + f * bins_per_frame + k`` of repeat ``r`` counts spikes in
        ``[starts[r, f] + k / bin_rate, starts[r, f] + (k + 1) / bin_rate)``.
    """
    n_repeats, n_frames = starts.shape
    n_units = len(spikes)
    n_time = n_frames * bins_per_frame + 2 * pad
    if out is None:
        out = np.zeros((n_repeats, n_time, n_units), dtype=np.float32)
    elif out.shape != (n_repeats, n_time, n_units):
        raise ValueError(f"out has shape {out.shape}, expected {(n_repeats, n_time, n_units)}")
    else:
        out[...] = 0  # only bins holding spikes are written below
    if n_units == 0 or starts.size == 0:
        return out

    # Presentations in time order, and the first output row each one writes to.
    order = np.argsort(starts, axis=None, kind="stable")
    sorted_starts = starts.ravel()[order]
    repeat_of, frame_of = np.unravel_index(order, starts.shape)
    first_row = repeat_of * n_time + pad + frame_of * bins_per_frame
    t_begin, t_end = sorted_starts[0], sorted_starts[-1] + bins_per_frame / bin_rate
    locate = _PresentationLocator(sorted_starts, t_end, 1.0 / bin_rate)

    out_rows = out.view()
    out_rows.shape = (n_repeats * n_time, n_units)  # a view even for a column slice of a wider array
    # Units are processed in chunks of about ``chunk_spikes`` spikes to bound scratch memory.
    counts_per_unit = spikes.counts()
    for a, b in _unit_chunks(counts_per_unit, chunk_spikes):
        base = spikes.offsets[a]
        times = spikes.times[base : spikes.offsets[b]]
        idx = np.flatnonzero((times >= t_begin) & (times < t_end))
        t = times[idx]
        pres = locate(t)
        k = ((t - sorted_starts[pres]) * bin_rate).astype(np.int64)  # t >= start, so truncation = floor
        keep = k < bins_per_frame
        idx, row = idx[keep], first_row[pres[keep]] + k[keep]
        if row.size == 0:
            continue
        # Where each unit's kept spikes begin; within a unit, movie rows follow time order.
        unit_begin = np.searchsorted(idx, spikes.offsets[a:b] - base)
        unit_edge = np.zeros(row.size, dtype=bool)
        unit_edge[unit_begin[unit_begin < row.size]] = True
        if not ((row[1:] >= row[:-1]) | unit_edge[1:]).all():  # scenes: rows are by image, not time
            unit_of = np.searchsorted(unit_begin, np.arange(row.size), side="right") - 1
            order = np.lexsort((row, unit_of))
            row = row[order]
        # Equal (unit, row) keys are adjacent: count them as runs, with no dense scratch array.
        new_run = unit_edge
        np.logical_or(new_run[1:], row[1:] != row[:-1], out=new_run[1:])
        new_run[0] = True
        run_start = np.flatnonzero(new_run)
        run_count = np.diff(run_start, append=row.size)
        run_unit = a + np.searchsorted(unit_begin, run_start, side="right") - 1
        out_rows[row[run_start], run_unit] = run_count
    return out


def _unit_chunks(counts: np.ndarray, chunk_spikes: int) -> list[tuple[int, int]]:
    """Contiguous unit ranges holding about ``chunk_spikes`` spikes each (at least one unit)."""
    bounds, start, acc = [], 0, 0
    for i, c in enumerate(counts):
        acc += int(c)
        if acc >= chunk_spikes:
            bounds.append((start, i + 1))
            start, acc = i + 1, 0
    if start < len(counts):
        bounds.append((start, len(counts)))
    return bounds


class _PresentationLocator:
    """Index of the latest presentation starting at or before each time, in O(1) per spike.

    Times map to cells of a uniform grid (narrower than the shortest gap between starts) with
    one monotonic formula, used both for the starts and for the spikes. ``table[j]`` is the last
    presentation whose start fell in a cell before ``j``; at most one start shares a spike's
    cell, so one comparison finishes the job exactly. This replaces a binary search per spike,
    which otherwise dominates the cost of binning. Only valid for ``starts[0] <= t < t_end``.
    """

    def __init__(self, sorted_starts: np.ndarray, t_end: float, bin_width: float, max_cells: int = 20_000_000):
        gaps = np.diff(sorted_starts)
        gaps = gaps[gaps > 0]
        cell = min(gaps.min() if gaps.size else bin_width, bin_width) / 2
        self.origin, self.scale = sorted_starts[0], 1.0 / cell
        self.starts = np.append(sorted_starts, np.inf)  # starts[p + 1] always exists
        n_cells = int((t_end - self.origin) * self.scale) + 2
        if n_cells > max_cells or len(np.unique(sorted_starts)) < len(sorted_starts):
            self.table = None  # pathological timing: fall back to binary search
            return
        start_cell = ((sorted_starts - self.origin) * self.scale).astype(np.int64)
        self.table = np.searchsorted(start_cell, np.arange(n_cells), side="left") - 1

    def __call__(self, times: np.ndarray) -> np.ndarray:
        if self.table is None:
            return np.searchsorted(self.starts[:-1], times, side="right") - 1
        pres = self.table[((times - self.origin) * self.scale).astype(np.int64)]
        pres += self.starts[pres + 1] <= times
        return pres


def histogram_reference(
    spikes: SpikeTrains, starts: np.ndarray, *, bin_rate: float = 120.0, bins_per_frame: int = 4
) -> np.ndarray:
    """The straightforward per-unit ``np.histogram`` loop, for tests and benchmarks only.

    Returns (n_repeats, n_frames * bins_per_frame, n_units) float32 with the same bins as
    :func:`bin_spikes`. Each presentation contributes its ``bins_per_frame`` bins plus one gap
    bin up to the next start (discarded), so the edges stay monotonic.
    """
    n_repeats, n_frames = starts.shape
    order = np.argsort(starts, axis=None, kind="stable")
    s = starts.ravel()[order]
    next_start = np.append(s[1:], np.inf)
    lefts = s[:, None] + np.arange(bins_per_frame) / bin_rate
    ends = np.minimum(s + bins_per_frame / bin_rate, next_start)
    edges = np.concatenate([lefts, ends[:, None]], axis=1).ravel()
    repeat_of, frame_of = np.unravel_index(order, starts.shape)
    out = np.zeros((n_repeats, n_frames, bins_per_frame, len(spikes)), dtype=np.float32)
    for i in range(len(spikes)):
        hist, _ = np.histogram(spikes.unit(i), bins=edges)
        hist = np.append(hist, 0).reshape(-1, bins_per_frame + 1)[:, :bins_per_frame]
        out[repeat_of, frame_of, :, i] = hist
    return out.reshape(n_repeats, n_frames * bins_per_frame, len(spikes))
