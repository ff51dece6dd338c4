"""The narrated timeline: for a few test windows, the frame, the units' activity around it,
the decoded sentence, the reference caption and the window's SBERT score.

Inputs are already-loaded objects: the narrate stage's per-window table, the evaluate
stage's per-window scores, the stimulus frames and the binned dataset. Nothing here reads
files, and nothing is computed that the earlier stages did not already produce, except the
pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurrator.data.types import AREA_GROUPS
from neurrator.preprocess.types import NeuralDataset
from neurrator.report.config import ReportConfig
from neurrator.report.content import TimelineEntry
from neurrator.report.figures import raster_png, thumbnail_png

#: Accepted column names, first match wins, for each field of a timeline row.
FRAME_COLUMNS = ("frame", "frame_id", "frame_index")
REPEAT_COLUMNS = ("repeat", "trial")
NARRATION_COLUMNS = ("narration", "sentence", "decoded", "prediction", "text")
REFERENCE_COLUMNS = ("reference", "references", "reference_caption", "reference_captions", "caption", "captions")
SCORE_COLUMNS = ("sbert", "sbert_matched", "matched", "score")

#: Raster rows run up the visual hierarchy, then the hippocampal control; other areas last.
AREA_ORDER = (*AREA_GROUPS["LGd"], "LP", *AREA_GROUPS["V1"], *AREA_GROUPS["higher_visual"], *AREA_GROUPS["hippocampus"])


def find_column(frame: pd.DataFrame | None, candidates: Sequence[str]) -> str | None:
    """The first of ``candidates`` that ``frame`` has, or ``None``."""
    if frame is None:
        return None
    return next((c for c in candidates if c in frame.columns), None)


@dataclass(frozen=True)
class TimelineRows:
    """Test windows in a normalised layout.

    ``table`` has columns ``frame`` (int), ``repeat`` (Int64, may be missing), ``narration``
    (str or None), ``references`` (list of str) and ``score`` (float, NaN if not evaluated);
    ``score_label`` names the score column it came from; ``note`` says why scores could not
    be matched to windows, if so.
    """

    table: pd.DataFrame
    score_label: str
    note: str = ""


def _join_scores(narrations: pd.DataFrame, per_window: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``narrations`` with ``per_window``'s extra columns attached to the same windows.

    Windows are matched by (frame, repeat) when both tables have them, by frame when each
    frame is scored once, or row by row when both tables list the very same frames in the
    same order (the evaluate stage scores the narrations in order). Otherwise scores are left
    out rather than guessed.
    """
    frame_n, frame_p = find_column(narrations, FRAME_COLUMNS), find_column(per_window, FRAME_COLUMNS)
    extra = [c for c in per_window.columns if c not in narrations.columns]
    if frame_n is None or frame_p is None or frame_n != frame_p or not extra:
        return narrations, "" if not extra else "scores could not be matched to windows (no common frame column)"
    repeat_n, repeat_p = find_column(narrations, REPEAT_COLUMNS), find_column(per_window, REPEAT_COLUMNS)
    if repeat_n is not None and repeat_n == repeat_p:
        # The narrate stage's row index of the window, when both carry it, pins the match exactly.
        keys = [frame_n, repeat_n, *(["window"] if "window" in narrations and "window" in per_window else [])]
    elif not per_window[frame_p].duplicated().any():
        keys = [frame_n]
    elif len(narrations) == len(per_window) and np.array_equal(narrations[frame_n], per_window[frame_p]):
        joined = narrations.reset_index(drop=True).join(per_window[extra].reset_index(drop=True))
        return joined, ""
    else:
        return narrations, "scores could not be matched to windows (frames repeat and no repeat column)"
    scored = per_window[[*keys, *extra]].drop_duplicates(subset=keys)
    return narrations.merge(scored, on=keys, how="left"), ""


def timeline_rows(narrations: pd.DataFrame | None, per_window: pd.DataFrame | None) -> TimelineRows:
    """Join the narrate stage's windows with the evaluate stage's scores.

    Parameters
    ----------
    narrations : one row per test window (``narrate/narrations.parquet``), or ``None``.
    per_window : one row per test window with scores (``evaluate/per_window.parquet``), or ``None``.

    Raises
    ------
    ValueError : if neither table is given or the table has no frame column.
    """
    note = ""
    if narrations is not None and per_window is not None:
        base, note = _join_scores(narrations, per_window)
    elif narrations is not None or per_window is not None:
        base = narrations if narrations is not None else per_window
    else:
        raise ValueError("no per-window table (neither narrations nor evaluation scores)")
    frame_col = find_column(base, FRAME_COLUMNS)
    if frame_col is None:
        raise ValueError(f"per-window table has no frame column (looked for {', '.join(FRAME_COLUMNS)})")
    repeat_col = find_column(base, REPEAT_COLUMNS)
    narration_col = find_column(base, NARRATION_COLUMNS)
    reference_col = find_column(base, REFERENCE_COLUMNS)
    score_col = find_column(base, SCORE_COLUMNS)
    n = len(base)
    repeats = base[repeat_col] if repeat_col else pd.Series(pd.NA, index=base.index)
    table = pd.DataFrame(
        {
            "frame": base[frame_col].astype("int64").to_numpy(),
            "repeat": repeats.astype("Int64").to_numpy(),
            "narration": [_text_or_none(v) for v in base[narration_col]] if narration_col else [None] * n,
            "references": [_text_list(v) for v in base[reference_col]] if reference_col else [[] for _ in range(n)],
            "score": base[score_col].astype("float64").to_numpy() if score_col else np.full(n, np.nan),
        }
    )
    return TimelineRows(table=table, score_label=score_col or "SBERT", note=note)


def select_windows(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` windows on distinct frames spread evenly over the test frames, in frame order.

    On each chosen frame the window of the lowest repeat is taken, so the choice is
    deterministic and does not depend on the scores (no cherry-picking).
    """
    if n <= 0 or table.empty:
        return table.iloc[:0]
    ordered = table.sort_values(["frame", "repeat"], na_position="last", kind="stable")
    first_per_frame = ordered.drop_duplicates(subset="frame", keep="first")
    picks = np.unique(np.linspace(0, len(first_per_frame) - 1, num=min(n, len(first_per_frame))).round().astype(int))
    return first_per_frame.iloc[picks]


def raster_units(dataset: NeuralDataset, unit_ids: np.ndarray | None, windows: list[np.ndarray], n: int) -> np.ndarray:
    """Column positions (into ``dataset.responses``) of the units drawn in every raster.

    The ``n`` units with the highest mean positive z-score over the shown windows, among
    the units the model used (``unit_ids``; all units if ``None``), ordered by area (up the
    visual hierarchy, see :data:`AREA_ORDER`), then depth, so areas form contiguous bands.

    Parameters
    ----------
    windows : list of (n_bins, n_units) activity slices, one per timeline entry.
    """
    positions = np.arange(dataset.n_units)
    if unit_ids is not None:
        # Compared as text: pseudo-mouse ids may be strings, single-session ids integers.
        found = dataset.units.index.astype(str).get_indexer(np.asarray(unit_ids).astype(str))
        positions = found[found >= 0]
    if positions.size == 0 or not windows:
        return positions[:0]
    drive = np.mean([np.clip(w[:, positions], 0, None).mean(axis=0) for w in windows], axis=0)
    top = positions[np.argsort(-drive, kind="stable")[:n]]
    units = dataset.units.iloc[top]
    depth = units["depth"].astype(float).to_numpy() if "depth" in units.columns else np.zeros(len(top))
    if "area" in units.columns:
        area = units["area"].astype(str).to_numpy()
        rank = np.array([AREA_ORDER.index(a) if a in AREA_ORDER else len(AREA_ORDER) for a in area])
        top = top[np.lexsort([depth, area, rank])]
    else:
        top = top[np.argsort(depth, kind="stable")]
    return top


def build_timeline(
    rows: TimelineRows,
    *,
    frames: np.ndarray | None,
    dataset: NeuralDataset | None,
    unit_ids: np.ndarray | None,
    config: ReportConfig,
    references: dict[int, list[str]] | None = None,
) -> list[TimelineEntry]:
    """Timeline entries for the windows chosen by :func:`select_windows`.

    Parameters
    ----------
    rows : the normalised per-window table.
    frames : (n_frames, H, W) uint8 stimulus frames for thumbnails, or ``None`` (no thumbnails).
    dataset : binned z-scored responses for the rasters, or ``None`` (no rasters).
    unit_ids : ids of the units the model used (from the checkpoint), or ``None`` for all.
    references : frame → reference captions, used where the table has none (the stimulus's own).
    """
    chosen = select_windows(rows.table, config.timeline_frames)
    slices: list[tuple[np.ndarray, int, int, int] | None] = []
    for row in chosen.itertuples(index=False):
        slices.append(_activity_slice(dataset, row.frame, row.repeat, config.raster_context_bins))
    units = None
    if dataset is not None:
        units = raster_units(dataset, unit_ids, [s[0] for s in slices if s is not None], config.raster_units)
    groups = None
    if units is not None and "area" in dataset.units.columns:
        groups = dataset.units["area"].iloc[units].astype(str).tolist()

    entries = []
    for row, sl in zip(chosen.itertuples(index=False), slices, strict=True):
        thumb = None
        if frames is not None and 0 <= row.frame < len(frames):
            thumb = thumbnail_png(frames[row.frame], config.thumbnail_width)
        raster = None
        if sl is not None and units is not None and units.size:
            activity, first, stop, onset = sl
            raster = raster_png(activity[:, units].T, bin_rate=dataset.bin_rate, window=(first, stop),
                                onset_bin=onset, unit_groups=groups, dpi=config.figure_dpi)
        entries.append(
            TimelineEntry(
                frame=int(row.frame),
                repeat=None if pd.isna(row.repeat) else int(row.repeat),
                narration=row.narration,
                references=list(row.references) or list((references or {}).get(int(row.frame), [])),
                score=None if pd.isna(row.score) else float(row.score),
                thumbnail=thumb,
                raster=raster,
            )
        )
    return entries


def _activity_slice(
    dataset: NeuralDataset | None, frame: int, repeat, context: int
) -> tuple[np.ndarray, int, int, int] | None:
    """(n_bins, n_units) activity around the window of ``(repeat, frame)``, plus the window's
    first and stop bins and the frame-onset bin, all relative to the slice."""
    if dataset is None or pd.isna(repeat) or not 0 <= int(repeat) < dataset.n_repeats:
        return None
    if dataset.n_frames and not 0 <= frame < dataset.n_frames:
        return None
    start = int(dataset.window_start(frame))
    n_time = dataset.responses.shape[1]
    lo = max(0, start - context)
    hi = min(n_time, start + dataset.window + context)
    onset = frame * dataset.bins_per_frame + dataset.pad
    return np.asarray(dataset.responses[int(repeat), lo:hi]), start - lo, start + dataset.window - lo, onset - lo


def _text_or_none(value) -> str | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return str(value)


def _text_list(value) -> list[str]:
    """A reference cell as a list of captions (a string, a list/array of strings, or missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]
