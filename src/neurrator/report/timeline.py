"""The narrated timeline: a scrubber over the whole stimulus showing, for the nearest narrated
test window, the frame, the units' activity around the window, the decoded sentence, the
reference captions and the window's score.

Inputs are already-loaded objects: the narrate stage's per-window table, the evaluate stage's
per-window scores, the stimulus frames and the binned dataset. Nothing here reads files, and
nothing is computed that the earlier stages did not already produce, except the pictures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurrator.data.types import AREA_GROUPS
from neurrator.preprocess.types import NeuralDataset
from neurrator.report.config import ReportConfig
from neurrator.report.content import RasterStrip, Timeline, TimelineWindow
from neurrator.report.figures import frame_sprite, raster_strip_png, score_track_png

#: Raster rows run up the visual hierarchy, then the hippocampal control; other areas last.
AREA_ORDER = (*AREA_GROUPS["LGd"], "LP", *AREA_GROUPS["V1"], *AREA_GROUPS["higher_visual"], *AREA_GROUPS["hippocampus"])
#: Per-window score columns of the evaluate stage, first match wins (headline first).
SCORE_COLUMNS = ("sbert", "matched", "score")


@dataclass(frozen=True)
class TimelineRows:
    """Test windows in one layout: ``table`` has ``frame`` (int), ``repeat`` (Int64, may be
    missing), ``narration`` (str or None), ``references`` (list of str) and ``score`` (float,
    NaN if not evaluated); ``score_label`` names the score column it came from."""

    table: pd.DataFrame
    score_label: str


def timeline_rows(narrations: pd.DataFrame | None, per_window: pd.DataFrame | None) -> TimelineRows:
    """Join the narrate stage's windows with the evaluate stage's scores on (repeat, frame).

    Parameters
    ----------
    narrations : one row per narrated window: ``repeat``, ``frame``, ``narration``,
        ``references`` (the narrate stage's table), or ``None``.
    per_window : one row per scored window: ``repeat``, ``frame`` and score columns, or ``None``.
    """
    if narrations is None and per_window is None:
        raise ValueError("timeline_rows needs the narrations, the scores or both")
    keys = ["repeat", "frame"]
    score_col = next((c for c in SCORE_COLUMNS if per_window is not None and c in per_window), None)
    if narrations is not None and per_window is not None and score_col is not None:
        base = narrations.merge(per_window[[*keys, score_col]].drop_duplicates(keys), on=keys, how="left")
    else:
        base = narrations if narrations is not None else per_window
    n = len(base)
    table = pd.DataFrame({
        "frame": base["frame"].astype("int64").to_numpy(),
        "repeat": base["repeat"].astype("Int64").to_numpy(),
        "narration": [_text_or_none(v) for v in base["narration"]] if "narration" in base else [None] * n,
        "references": [_text_list(v) for v in base["references"]] if "references" in base else [[] for _ in range(n)],
        "score": base[score_col].astype("float64").to_numpy() if score_col in base else np.full(n, np.nan),
    })
    return TimelineRows(table=table, score_label=f"SBERT ({score_col})" if score_col else "SBERT")


def one_window_per_frame(table: pd.DataFrame) -> pd.DataFrame:
    """The window of the lowest repeat on each frame, in frame order.

    Deterministic and independent of the scores, so nothing is cherry-picked.
    """
    ordered = table.sort_values(["frame", "repeat"], na_position="last", kind="stable")
    return ordered.drop_duplicates(subset="frame", keep="first")


def raster_units(dataset: NeuralDataset, unit_ids: np.ndarray | None, activity: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Column positions (into ``dataset.responses``) of the units drawn in every raster.

    The ``n`` units with the highest mean positive z-score over ``activity``, among the units
    the model used (``unit_ids``; all units if ``None``), ordered by area (up the visual
    hierarchy, see :data:`AREA_ORDER`), then depth, so areas form contiguous bands.

    Parameters
    ----------
    activity : (n_bins, n_units) slices of ``dataset.responses`` (e.g. the shown repeats).
    """
    positions = np.arange(dataset.n_units)
    if unit_ids is not None:
        # Compared as text: pseudo-mouse ids may be strings, single-session ids integers.
        found = dataset.units.index.astype(str).get_indexer(np.asarray(unit_ids).astype(str))
        positions = found[found >= 0]
    if positions.size == 0 or not activity:
        return positions[:0]
    drive = np.mean([np.clip(a[:, positions], 0, None).mean(axis=0) for a in activity], axis=0)
    top = positions[np.argsort(-drive, kind="stable")[:n]]
    units = dataset.units.iloc[top]
    depth = units["depth"].astype(float).to_numpy() if "depth" in units.columns else np.zeros(len(top))
    if "area" in units.columns:
        area = units["area"].astype(str).to_numpy()
        rank = np.array([AREA_ORDER.index(a) if a in AREA_ORDER else len(AREA_ORDER) for a in area])
        return top[np.lexsort([depth, area, rank])]
    return top[np.argsort(depth, kind="stable")]


def _bands(labels: Sequence[str]) -> tuple[tuple[str, int, int], ...]:
    """Runs of equal labels as (label, first row, n rows)."""
    bands: list[tuple[str, int, int]] = []
    for row, label in enumerate(labels):
        if bands and bands[-1][0] == label:
            bands[-1] = (label, bands[-1][1], bands[-1][2] + 1)
        else:
            bands.append((label, row, 1))
    return tuple(bands)


def build_timeline(
    rows: TimelineRows,
    *,
    n_frames: int,
    frame_rate: float | None,
    frames: np.ndarray | None,
    dataset: NeuralDataset | None,
    unit_ids: np.ndarray | None,
    config: ReportConfig,
    references: dict[int, list[str]] | None = None,
) -> Timeline:
    """The timeline over ``n_frames`` frames from the narrated windows in ``rows``.

    Parameters
    ----------
    rows : the joined per-window table (:func:`timeline_rows`).
    frames : (n_frames, H, W) uint8 stimulus frames for the sprite, or ``None`` (no pictures).
    dataset : binned z-scored responses for the rasters, or ``None`` (no rasters).
    unit_ids : ids of the units the model used (from the checkpoint), or ``None`` for all.
    references : frame → reference captions, used where the table has none (the stimulus's own).
    """
    chosen = one_window_per_frame(rows.table)
    chosen = chosen[(chosen["frame"] >= 0) & (chosen["frame"] < n_frames)]
    timeline = Timeline(n_frames=n_frames, frame_rate=frame_rate, score_label=rows.score_label)
    if frames is not None and len(frames):
        timeline.sprite = frame_sprite(frames[:n_frames], tile_width=config.thumbnail_width,
                                       max_tiles=config.timeline_max_tiles)

    shown_repeats: list[int] = []
    if dataset is not None:
        timeline.window, timeline.bin_rate = dataset.window, float(dataset.bin_rate)
        counts = chosen["repeat"].dropna().astype(int).value_counts()
        shown_repeats = sorted(r for r in counts.index[: config.raster_repeats] if 0 <= r < dataset.n_repeats)
        activity = [np.asarray(dataset.responses[r]) for r in shown_repeats]
        units = raster_units(dataset, unit_ids, activity, config.raster_units)
        labels = dataset.units["area"].iloc[units].astype(str).tolist() if "area" in dataset.units else ["units"] * len(units)
        if units.size:
            for r, a in zip(shown_repeats, activity, strict=True):
                timeline.rasters[r] = RasterStrip(repeat=r, png=raster_strip_png(a[:, units].T), n_bins=a.shape[0],
                                                  n_units=int(units.size), bands=_bands(labels))

    track = np.full(n_frames, np.nan)
    for row in chosen.itertuples(index=False):
        repeat = None if pd.isna(row.repeat) else int(row.repeat)
        start = int(dataset.window_start(row.frame)) if dataset is not None and repeat in timeline.rasters else None
        refs = list(row.references) or list((references or {}).get(int(row.frame), []))
        score = None if pd.isna(row.score) else float(row.score)
        timeline.windows.append(TimelineWindow(frame=int(row.frame), repeat=repeat, narration=row.narration,
                                               references=tuple(refs), score=score, start_bin=start))
        if score is not None:
            track[int(row.frame)] = score
    if timeline.windows:
        timeline.score_track = score_track_png(track)
    return timeline


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
