"""Build a :class:`NeuralDataset` from one session or a frame-aligned pseudo-mouse of several.

Movies (``natural_movie_one``/``three``): 4 bins of 1/120 s per 33 ms frame, aligned to each
frame's own start time; ``responses[r, pad + 4 f + k]`` is bin ``k`` of frame ``f`` on repeat ``r``.
Windows of 20 bins (167 ms) are centred on the frame's bins.

Natural scenes: each 250 ms presentation gets ``scene_bins`` (30) bins from its onset, laid out
back to back by image id, and ``repeat`` is the presentation index of that image (0 = first
showing). The 20-bin window centred on an image's 30 bins spans 42–208 ms after onset, which
covers the visual response (latencies 40–80 ms) and stays inside the presentation, so no window
mixes two images. Blank presentations (frame −1) are not samples.

Pseudo-mice: sessions are stacked along the unit axis. Every session is binned against its own
presentation times; the alignment error is how far a session's within-repeat frame clock
departs from the first session's, and a session off by more than ``max_alignment_error_bins``
is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.data.types import MOVIE_STIMULI, SCENE_STIMULI, Session
from neurrator.preprocess.binning import bin_spikes, presentation_grid
from neurrator.preprocess.splits import make_split
from neurrator.preprocess.types import NeuralDataset, Split, ZScoreStats

MOVIE_FRAME_RATE = 30.0


@dataclass(frozen=True)
class AlignedGrid:
    """Presentation start times of several sessions on one common ``(repeat, frame)`` grid.

    Attributes
    ----------
    starts : one (n_repeats, n_frames) float64 array per session.
    alignment_error_s : per session, max |within-repeat frame time − first session's| (seconds).
    """

    stimulus: str
    starts: list[np.ndarray]
    session_ids: list[str]
    alignment_error_s: list[float]

    @property
    def n_repeats(self) -> int:
        return int(self.starts[0].shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.starts[0].shape[1])

    def report(self, bin_rate: float) -> dict:
        """Alignment summary for manifests: errors in ms and in bins, per session."""
        return {
            "stimulus": self.stimulus,
            "reference_session": self.session_ids[0],
            "n_repeats": self.n_repeats,
            "n_frames": self.n_frames,
            "per_session": {
                sid: {"max_error_ms": round(err * 1e3, 4), "max_error_bins": round(err * bin_rate, 4)}
                for sid, err in zip(self.session_ids, self.alignment_error_s)
            },
            "max_error_ms": round(max(self.alignment_error_s) * 1e3, 4),
        }


def align_sessions(
    sessions: list[Session],
    stimulus_name: str,
    n_frames: int | None = None,
    *,
    bin_rate: float = 120.0,
    max_alignment_error_bins: float = 1.0,
) -> AlignedGrid:
    """Put the presentations of ``sessions`` on a common (repeat, frame) grid and check alignment.

    Keeps the complete repeats every session has (the smallest count). For scenes, the
    within-repeat clock is not meaningful (each presentation is aligned to its own onset), so the
    error is reported as 0.

    Raises :class:`InputError` naming the session file if the stimulus is missing or the session
    is misaligned by more than ``max_alignment_error_bins`` bins.
    """
    if not sessions:
        raise InputError(None, "no sessions given")
    if stimulus_name not in MOVIE_STIMULI + SCENE_STIMULI:
        raise InputError(None, f"unknown stimulus {stimulus_name!r}")
    for s in sessions:
        if stimulus_name not in s.presentations or s.presentations[stimulus_name].empty:
            raise InputError(s.source, f"session {s.session_id} has no {stimulus_name} presentations")
    if n_frames is None:
        n_frames = int(max(s.presentations[stimulus_name]["frame"].max() for s in sessions)) + 1
    grids = [presentation_grid(s.presentations[stimulus_name], n_frames) for s in sessions]
    return align_grids(stimulus_name, grids, [s.session_id for s in sessions], [s.source for s in sessions],
                       bin_rate=bin_rate, max_alignment_error_bins=max_alignment_error_bins)


def align_grids(
    stimulus_name: str,
    grids: list[np.ndarray],
    session_ids: list[str],
    sources: list,
    *,
    bin_rate: float = 120.0,
    max_alignment_error_bins: float = 1.0,
) -> AlignedGrid:
    """:func:`align_sessions` on the sessions' presentation grids ((n_repeats, n_frames) start
    times each, e.g. from per-session caches): keep the complete repeats all have, check the
    within-repeat frame clocks against the first session's."""
    for sid, source, g in zip(session_ids, sources, grids):
        if len(g) == 0:
            raise InputError(source, f"session {sid} has no complete repeat of {stimulus_name} ({g.shape[1]} frames)")
    n_repeats = min(len(g) for g in grids)
    grids = [g[:n_repeats] for g in grids]
    errors = [0.0] * len(grids)
    if stimulus_name in MOVIE_STIMULI:
        ref = grids[0] - grids[0][:, :1]
        errors = [float(np.abs((g - g[:, :1]) - ref).max()) for g in grids]
    for sid, source, err in zip(session_ids, sources, errors):
        if err * bin_rate > max_alignment_error_bins:
            raise InputError(
                source,
                f"session {sid} is misaligned with session {session_ids[0]} by "
                f"{err * 1e3:.1f} ms ({err * bin_rate:.2f} bins > {max_alignment_error_bins}); refusing to pool it",
            )
    return AlignedGrid(stimulus_name, grids, list(session_ids), errors)


def pooled_units(sessions: list[Session]) -> pd.DataFrame:
    """Units of all ``sessions`` stacked, with ``session_id`` and ``genotype`` columns added."""
    return pooled_unit_table([s.units.assign(session_id=s.session_id, genotype=s.genotype) for s in sessions])


def pooled_unit_table(tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Per-session unit tables (with ``session_id``) stacked; unit ids must be unique."""
    units = pd.concat(tables, axis=0)
    dup = units.index[units.index.duplicated()]
    if len(dup):
        raise InputError(None, f"unit ids are not unique across sessions (e.g. {dup[:3].tolist()}); cannot pool")
    if "cell_type" in units:
        units["cell_type"] = units["cell_type"].astype(object).where(units["cell_type"].notna(), None)
    units.index.name = "unit_id"
    return units


def bins_per_frame_for(stimulus_name: str, bin_rate: float, scene_bins: int) -> int:
    """4 bins per movie frame at 120 Hz; ``scene_bins`` per natural-scenes presentation."""
    if stimulus_name in SCENE_STIMULI:
        return scene_bins
    bpf = bin_rate / MOVIE_FRAME_RATE
    if abs(bpf - round(bpf)) > 1e-9:
        raise InputError(None, f"bin_rate {bin_rate} Hz does not divide the 30 Hz movie frames into whole bins")
    return round(bpf)


def build_dataset(
    sessions: list[Session],
    stimulus_name: str,
    split: Split | str,
    *,
    bin_rate: float = 120.0,
    window: int = 20,
    n_frames: int | None = None,
    scene_bins: int = 30,
    split_seed: int = 0,
    max_alignment_error_bins: float = 1.0,
) -> NeuralDataset:
    """Bin, z-score and pad the responses of ``sessions`` to ``stimulus_name``.

    Parameters
    ----------
    sessions : one session, or several pooled into a frame-aligned pseudo-mouse (units stacked).
    stimulus_name : ``natural_movie_one``, ``natural_movie_three`` or ``natural_scenes``.
    split : a :class:`Split`, or a split name drawn with ``split_seed`` for the data's grid.
        z-score statistics come from its training samples only.
    bin_rate, window : 120 Hz bins and 20-bin windows by default.
    n_frames : number of stimulus frames/images (default: highest frame shown + 1).
    scene_bins : bins per natural-scenes presentation.

    Returns
    -------
    NeuralDataset with ``responses`` (n_repeats, n_frames * bins_per_frame + 2 * pad, n_units)
    float32, ``pad = window``. ``meta`` holds the split, sessions and alignment report.
    """
    grid = align_sessions(
        sessions, stimulus_name, n_frames, bin_rate=bin_rate, max_alignment_error_bins=max_alignment_error_bins
    )
    bpf = bins_per_frame_for(stimulus_name, bin_rate, scene_bins)
    if isinstance(split, str):
        split = make_split(split, grid.n_repeats, grid.n_frames, split_seed, window=window, bins_per_frame=bpf)
    _check_split_fits(split, grid)
    units = pooled_units(sessions)
    pad = window
    n_time = grid.n_frames * bpf + 2 * pad
    responses = np.zeros((grid.n_repeats, n_time, len(units)), dtype=np.float32)
    col = 0
    for session, starts in zip(sessions, grid.starts):
        n = session.n_units
        bin_spikes(
            session.spikes, starts, bin_rate=bin_rate, bins_per_frame=bpf, pad=pad,
            out=responses[:, :, col : col + n],
        )
        col += n
    stats = zscore_in_place(responses, split.train, bins_per_frame=bpf, pad=pad)
    meta = {
        "split": split.name,
        "split_seed": split.seed,
        "sessions": [
            {"session_id": s.session_id, "genotype": s.genotype, "source": str(s.source) if s.source else None,
             "is_simulated": s.is_simulated, "n_units": s.n_units}
            for s in sessions
        ],
        "alignment": grid.report(bin_rate),
        "is_simulated": any(s.is_simulated for s in sessions),
    }
    return NeuralDataset(
        stimulus=stimulus_name, responses=responses, bins_per_frame=bpf, window=window, pad=pad,
        units=units, zscore=stats, bin_rate=bin_rate, n_frames=grid.n_frames, meta=meta,
    )


def zscore_in_place(responses: np.ndarray, train_pairs: np.ndarray, *, bins_per_frame: int, pad: int) -> ZScoreStats:
    """z-score ``responses`` (n_repeats, n_time, n_units) in place with training-sample statistics.

    Mean and std per unit come from the bins of ``train_pairs`` ((n, 2) ``(repeat, frame)``)
    only; padding stays 0. A unit silent in training gets std 1 (it stays 0 after centring).
    """
    n_repeats, n_time, n_units = responses.shape
    n_frames = (n_time - 2 * pad) // bins_per_frame
    is_train = np.zeros((n_repeats, n_frames), dtype=bool)
    is_train[train_pairs[:, 0], train_pairs[:, 1]] = True
    total = np.zeros(n_units)
    total_sq = np.zeros(n_units)
    count = 0
    for r in np.flatnonzero(is_train.any(axis=1)):
        bins = pad + (np.flatnonzero(is_train[r])[:, None] * bins_per_frame + np.arange(bins_per_frame)).ravel()
        block = responses[r, bins].astype(np.float64)
        total += block.sum(axis=0)
        total_sq += np.square(block).sum(axis=0)
        count += len(bins)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    std[std < 1e-6] = 1.0
    mean32, std32 = mean.astype(np.float32), std.astype(np.float32)
    core = slice(pad, n_time - pad)
    for r in range(n_repeats):  # per repeat keeps temporaries small
        responses[r, core] -= mean32
        responses[r, core] /= std32
    return ZScoreStats(mean=mean32, std=std32)


def rezscore(ds: NeuralDataset, split: Split) -> NeuralDataset:
    """The same responses z-scored with ``split``'s training statistics instead (a new array)."""
    _check_split_fits(split, ds)
    raw = np.array(ds.responses, dtype=np.float32)
    core = slice(ds.pad, raw.shape[1] - ds.pad)
    raw[:, core] *= ds.zscore.std
    raw[:, core] += ds.zscore.mean
    stats = zscore_in_place(raw, split.train, bins_per_frame=ds.bins_per_frame, pad=ds.pad)
    meta = {**ds.meta, "split": split.name, "split_seed": split.seed}
    return replace(ds, responses=raw, zscore=stats, meta=meta)


def select_units(ds: NeuralDataset, mask: np.ndarray) -> NeuralDataset:
    """A dataset with only the units where ``mask`` is True (responses copied, stats kept)."""
    mask = np.asarray(mask, dtype=bool)
    return replace(
        ds,
        responses=np.ascontiguousarray(ds.responses[:, :, mask]),
        units=ds.units[mask],
        zscore=ZScoreStats(mean=ds.zscore.mean[mask], std=ds.zscore.std[mask]),
    )


def _check_split_fits(split: Split, grid) -> None:
    pairs = np.concatenate([split.train, split.val, split.test])
    if len(split.train) == 0:
        raise InputError(None, f"split {split.name!r} has no training samples")
    if pairs.size and (pairs[:, 0].max() >= grid.n_repeats or pairs[:, 1].max() >= grid.n_frames):
        raise InputError(
            None,
            f"split {split.name!r} refers to repeat {pairs[:, 0].max()} / frame {pairs[:, 1].max()} but the data "
            f"have {grid.n_repeats} repeats × {grid.n_frames} frames",
        )
