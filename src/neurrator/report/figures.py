"""Figures the report draws itself, with matplotlib, returned as PNG bytes.

Uses ``matplotlib.figure.Figure`` directly (no pyplot), so no global figure state or GUI
backend is involved and nothing leaks between calls.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure as MplFigure
from matplotlib.image import imsave
from matplotlib.ticker import MaxNLocator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_data_uri(png: bytes) -> str:
    """``data:image/png;base64,…`` for embedding a PNG in HTML."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def is_png(data: bytes) -> bool:
    return data[:8] == PNG_MAGIC


def _to_png(fig: MplFigure, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def thumbnail_png(frame: np.ndarray, width: int) -> bytes:
    """A stimulus frame shrunk to at most ``width`` pixels wide, as PNG.

    Parameters
    ----------
    frame : (H, W) uint8 grayscale or (H, W, 3) uint8 RGB.
    width : target width; the frame is block-averaged by the integer factor that gets there.
    """
    frame = np.asarray(frame)
    if frame.ndim not in (2, 3):
        raise ValueError(f"a frame must be (H, W) or (H, W, 3), got shape {frame.shape}")
    factor = max(1, int(np.ceil(frame.shape[1] / width)))
    h = frame.shape[0] // factor * factor
    w = frame.shape[1] // factor * factor
    # Block means rather than striding, so fine texture does not alias into moiré.
    blocks = frame[:h, :w].astype(np.float32).reshape(h // factor, factor, w // factor, factor, *frame.shape[2:])
    small = blocks.mean(axis=(1, 3)).round().clip(0, 255).astype(np.uint8)
    buf = io.BytesIO()
    if small.ndim == 2:
        imsave(buf, small, cmap="gray", vmin=0, vmax=255, format="png")
    else:
        imsave(buf, small, format="png")
    return buf.getvalue()


def raster_png(
    activity: np.ndarray,
    *,
    bin_rate: float,
    window: tuple[int, int],
    onset_bin: int,
    unit_groups: Sequence[str] | None = None,
    dpi: int = 100,
) -> bytes:
    """Binned activity of some units around one decoded window, as a small raster image.

    Parameters
    ----------
    activity : (n_units, n_bins) float, z-scored binned responses (rows already ordered).
    bin_rate : bins per second (120 Hz).
    window : (first, stop) bin indices (into ``activity``'s time axis) of the decoded window.
    onset_bin : index of the frame's first bin; the x axis is time from that frame's onset.
    unit_groups : (n_units,) a label per row (brain area); contiguous runs are labelled.
    """
    n_units, n_bins = activity.shape
    to_ms = lambda b: (b - onset_bin) / bin_rate * 1e3
    fig = MplFigure(figsize=(2.8, 1.9), layout="constrained")
    ax = fig.subplots()
    # Only excitation is drawn (z ≥ 0, clipped at 3 SD) so it reads like a spike raster.
    ax.imshow(activity, aspect="auto", cmap="Greys", vmin=0.0, vmax=3.0, interpolation="nearest",
              extent=(to_ms(0), to_ms(n_bins), n_units - 0.5, -0.5))
    ax.axvspan(to_ms(window[0]), to_ms(window[1]), color="tab:orange", alpha=0.12, lw=0)
    for edge in window:
        ax.axvline(to_ms(edge), color="tab:orange", lw=0.8)
    ax.axvline(0.0, color="tab:red", lw=0.8, ls=":")
    ax.set_xlabel("ms from frame onset", fontsize=7)
    ax.tick_params(labelsize=6, length=2)
    if unit_groups is not None and n_units:
        starts = [0] + [i for i in range(1, n_units) if unit_groups[i] != unit_groups[i - 1]]
        stops = starts[1:] + [n_units]
        ax.set_yticks([(a + b - 1) / 2 for a, b in zip(starts, stops, strict=True)])
        ax.set_yticklabels([str(unit_groups[a]) for a in starts])
        for a in starts[1:]:
            ax.axhline(a - 0.5, color="tab:blue", lw=0.4)
    else:
        ax.set_ylabel("unit", fontsize=7)
    return _to_png(fig, dpi)


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
