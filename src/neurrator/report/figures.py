"""Figures and images the report draws itself, returned as encoded bytes.

Plots use ``matplotlib.figure.Figure`` directly (no pyplot), so no global figure state or GUI
backend is involved and nothing leaks between calls. Pixel images for the timeline (frame
sprite, raster strips, score track) are encoded with Pillow.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.ticker import MaxNLocator

from neurrator.report.content import Sprite

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data:<mime>;base64,…`` for embedding an image in HTML."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_MAGIC


def _to_png(fig: MplFigure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _encode(image: np.ndarray, fmt: str = "PNG", **options) -> bytes:
    """(H, W) uint8 grayscale or (H, W, 3) uint8 RGB as PNG or JPEG bytes (Pillow)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format=fmt, **options)
    return buf.getvalue()


def shrink_frame(frame: np.ndarray, width: int) -> np.ndarray:
    """A frame block-averaged by the integer factor that brings it to at most ``width`` px wide.

    Block means rather than striding, so fine texture does not alias into moiré.

    Parameters
    ----------
    frame : (H, W) or (H, W, 3) uint8.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3):
        raise ValueError(f"a frame must be (H, W) or (H, W, 3), got shape {frame.shape}")
    factor = max(1, int(np.ceil(frame.shape[1] / width)))
    h = frame.shape[0] // factor * factor
    w = frame.shape[1] // factor * factor
    blocks = frame[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor, *frame.shape[2:])
    return blocks.mean(axis=(1, 3)).round().clip(0, 255).astype(np.uint8)


def frame_sprite(frames: np.ndarray, *, tile_width: int, max_tiles: int, quality: int = 80) -> Sprite:
    """Every ``frame_step``-th frame, shrunk to ``tile_width`` and tiled row-major into one JPEG.

    ``frame_step`` is the smallest step that keeps the tiles at most ``max_tiles`` (at 30 Hz a
    step of 3 is 100 ms, finer than the eye follows while scrubbing).

    Parameters
    ----------
    frames : (n_frames, H, W) or (n_frames, H, W, 3) uint8.
    """
    n = len(frames)
    step = max(1, int(np.ceil(n / max_tiles)))
    tiles = [shrink_frame(frames[f], tile_width) for f in range(0, n, step)]
    th, tw = tiles[0].shape[:2]
    columns = max(1, min(len(tiles), 4096 // tw))
    rows = int(np.ceil(len(tiles) / columns))
    sheet = np.full((rows * th, columns * tw, *tiles[0].shape[2:]), 255, dtype=np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * th : (r + 1) * th, c * tw : (c + 1) * tw] = tile
    return Sprite(image=_encode(sheet, "JPEG", quality=quality), mime="image/jpeg", tile_width=tw, tile_height=th,
                  columns=columns, n_tiles=len(tiles), frame_step=step)


def raster_strip_png(activity: np.ndarray, *, clip_sd: float = 3.0) -> bytes:
    """Units × bins of z-scored activity as a grayscale PNG, one pixel per (unit, bin).

    Only excitation is drawn (z ≥ 0, clipped at ``clip_sd``), dark on white, so it reads like
    a spike raster.

    Parameters
    ----------
    activity : (n_units, n_bins) float, rows already in display order.
    """
    level = np.clip(np.nan_to_num(np.asarray(activity, dtype=np.float32)), 0.0, clip_sd) / clip_sd
    return _encode((255 - np.round(level * 255)).astype(np.uint8))


def score_track_png(scores: np.ndarray) -> bytes:
    """One pixel per frame: the frame's score on a colour scale (viridis over the scores' range);
    light grey where no window was scored (NaN).

    Parameters
    ----------
    scores : (n_frames,) float, NaN for frames without a scored window.
    """
    from matplotlib import colormaps

    scores = np.asarray(scores, dtype=np.float64)
    rgb = np.full((1, len(scores), 3), 225, dtype=np.uint8)
    ok = np.isfinite(scores)
    if ok.any():
        lo, hi = np.min(scores[ok]), np.max(scores[ok])
        level = (scores[ok] - lo) / (hi - lo) if hi > lo else np.full(ok.sum(), 0.5)
        rgb[0, ok] = (colormaps["viridis"](level)[:, :3] * 255).round().astype(np.uint8)
    return _encode(rgb)


def score_distribution_png(scores: Mapping[str, np.ndarray], *, title: str, dpi: int = 100) -> bytes:
    """Box plots of per-window scores, one box per named condition (matched, floors, ...).

    Parameters
    ----------
    scores : condition name → (n_windows,) float scores; NaNs are dropped.
    """
    names = list(scores)
    data = [np.asarray(scores[n], dtype=float) for n in names]
    data = [d[np.isfinite(d)] for d in data]
    fig = MplFigure(figsize=(1.6 + 1.1 * len(names), 3.2), layout="constrained")
    ax = fig.subplots()
    ax.boxplot(data, tick_labels=names, showfliers=False, widths=0.55)
    for i, d in enumerate(data, start=1):
        # Deterministic low-discrepancy jitter (golden-ratio sequence): reproducible, and
        # uncorrelated with the scores whatever generated them.
        jitter = (np.arange(len(d)) * 0.6180339887 % 1.0 - 0.5) * 0.36
        # Fainter dots for many windows, so the quartile boxes stay readable.
        ax.scatter(i + jitter, d, s=4, alpha=float(np.clip(6.0 / np.sqrt(max(len(d), 1)), 0.05, 0.35)),
                   color="tab:blue", lw=0)
    ax.set_ylabel("SBERT cosine")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _to_png(fig, dpi)


def training_curve_png(log: Mapping[str, np.ndarray], *, best_epoch: int | None = None, dpi: int = 100) -> bytes:
    """Training loss and validation metric against optimizer step (or epoch), side by side.

    Parameters
    ----------
    log : ``step`` or ``epoch`` (n,) and any of ``train_loss``, ``val_metric`` (n,) floats
        (``train/log.csv``: one row per validation).
    best_epoch : step (epoch, for logs without steps) of the kept checkpoint, marked on both panels.
    """
    panels = [c for c in ("train_loss", "val_metric") if c in log]
    fig = MplFigure(figsize=(3.4 * max(len(panels), 1), 2.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, max(len(panels), 1)))
    unit = "step" if "step" in log else "epoch"
    epoch = np.asarray(log[unit], dtype=float)
    for ax, column in zip(axes, panels, strict=False):
        ax.plot(epoch, np.asarray(log[column], dtype=float), marker="o", ms=3, lw=1.2)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:orange", lw=1, ls="--", label=f"kept ({unit} {best_epoch})")
            ax.legend(fontsize=7, frameon=False)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(column.replace("_", " "), fontsize=10)
        ax.grid(alpha=0.3)
    return _to_png(fig, dpi)
