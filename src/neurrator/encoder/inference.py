"""Batch inference that projects each 120 Hz bin once for all the windows that share it.

Windows of neighbouring frames overlap: at 4 bins per frame, a 20-bin window shares 16 of its
bins with the next frame's. The front of the encoder is linear in its input up to the
convolutions' output (an optional Linear bottleneck, then Conv1d), so instead of convolving
every window separately this module

1. projects every bin of a recording segment once: ``y = bottleneck(x)`` (n_bins, C_in), then
   through every tap ``j`` of every convolution: ``z[b, j] = W_j y_b`` (n_bins, k, C_out);
2. assembles each window's convolution output from those per-bin taps,
   ``conv[t] = bias + Σ_j z[start + t + j − k//2, j]`` over the taps that fall inside the
   window (the model zero-pads each window, so taps outside it contribute nothing);
3. runs the rest of the model (GELU, BatchNorm, transformer, head) per window.

The result equals ``model(windows)`` to float round-off (tested), never gathers a
(window × n_units) copy per window, and costs per window about 4 bins of projection instead of
20. Temporal ensembling (windows shifted by a few bins) reuses the same projections.

Only whole-population inputs or one unit mask shared by every window take this route;
per-window masks (training augmentation) use the ordinary forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from neurrator.preprocess.types import NeuralDataset


def window_starts(dataset: NeuralDataset, pairs: np.ndarray, shift: int = 0) -> np.ndarray:
    """First bin (padded time axis) of each pair's window shifted by ``shift`` bins, clipped to
    the padded range as :class:`~neurrator.encoder.train.WindowSampler` does."""
    start = dataset.window_start(pairs[:, 1]) + shift
    return np.clip(start, 0, dataset.responses.shape[1] - dataset.window)


def _tap_matrices(conv: nn.Conv1d) -> torch.Tensor:
    """Conv1d weight (C_out, C_in, k) → (C_in, k · C_out); column ``j · C_out + o`` is tap j of output o."""
    c_out, c_in, k = conv.weight.shape
    return conv.weight.permute(1, 2, 0).reshape(c_in, k * c_out)


def shared_front(body: nn.Module, segment: torch.Tensor, starts: torch.Tensor, window: int) -> torch.Tensor:
    """``body.front`` of the windows starting at ``starts`` (B,) in ``segment`` (n_bins, n_units).

    Returns (B, window, channels), equal to ``body.front(windows)`` in eval mode. Per branch of
    kernel k = 2h + 1, with ``z[b, j]`` bin b's contribution through tap j:

    - ``full[c] = bias + Σ_j z[c + j − h, j]``: the convolution of the whole segment, per bin;
    - a window starting at s zero-pads, so its output at t is ``full[s + t]`` minus the taps
      that reach outside it: ``left[s, t] = Σ_{j < h − t} z[s + t + j − h, j]`` for t < h and
      ``right[s, t'] = Σ_{j ≥ 2h − t'} z[s + window + t' + j − 2h, j]`` for the last h outputs.

    ``full``, ``left`` and ``right`` are sums of shifted slices over the segment's bins, so each
    window costs three small gathers instead of a convolution.
    """
    y = body.unit_bottleneck(segment) if body.unit_bottleneck is not None else segment
    n_bins = y.shape[0]
    n_starts = n_bins - window + 1  # windows that fit in the segment
    rows = starts[:, None] + torch.arange(window)[None]  # (B, window)
    outputs = []
    for branch in body.conv.branches:
        conv, activation, norm = branch
        k, c_out = conv.kernel_size[0], conv.out_channels
        h = k // 2
        z = (y @ _tap_matrices(conv)).view(n_bins, k, c_out)
        zp = torch.zeros(n_bins + 2 * h + window, k, c_out, dtype=z.dtype)
        zp[h : h + n_bins] = z  # zp[h + b] = z[b]; zero outside the segment
        full = conv.bias.expand(n_bins, c_out).clone()
        for j in range(k):
            full += zp[j : j + n_bins, j]
        out = full[rows]  # (B, window, C)
        edge = min(h, window)
        left = torch.zeros(n_starts, edge, c_out, dtype=z.dtype)
        right = torch.zeros(n_starts, edge, c_out, dtype=z.dtype)
        for t in range(edge):
            for j in range(h - t):
                left[:, t] += zp[t + j : t + j + n_starts, j]
            for j in range(2 * h - t, 2 * h + 1):
                lo = window + t + j - h
                right[:, t] += zp[lo : lo + n_starts, j]
        out[:, :edge] -= left[starts]
        out[:, window - edge :] -= right[starts]
        out = norm(activation(out).reshape(-1, c_out)).view(len(starts), window, c_out)
        outputs.append(out)
    return torch.cat(outputs, dim=-1)


def chunk_means(segment: torch.Tensor, starts: torch.Tensor, window: int, n_chunks: int) -> torch.Tensor:
    """Mean response per time chunk of the windows starting at ``starts`` in ``segment``
    (n_bins, n_units) → (B, n_chunks, n_units), from one cumulative sum over the segment's bins."""
    cumulative = torch.cat([torch.zeros(1, segment.shape[1], dtype=segment.dtype), segment.cumsum(dim=0)])
    length = window // n_chunks
    edges = starts[:, None] + torch.arange(n_chunks + 1)[None] * length  # (B, n_chunks + 1)
    sums = cumulative[edges]  # (B, n_chunks + 1, n_units)
    return (sums[:, 1:] - sums[:, :-1]) / length


@torch.no_grad()
def predict_windows(
    model: nn.Module,
    dataset: NeuralDataset,
    pairs: np.ndarray,
    *,
    unit_mask: torch.Tensor | None = None,
    shifts: tuple[int, ...] = (0,),
    batch_size: int = 256,
    dtype: str = "float32",
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """Yield ``(indices, outputs)``: the model's output (mean over ``shifts``) for ``pairs[indices]``.

    Parameters
    ----------
    model : a :class:`NeurratorPatches` or :class:`NeurratorRetrieval` in eval mode (with
        ``body.front``/``body.trunk`` and ``decode``).
    dataset : responses are read as slices of one repeat at a time (memory maps are fine).
    pairs : (n, 2) ``(repeat, frame)`` pairs, in any order.
    unit_mask : (n_units,) mask shared by every window (absent units set to z-score 0).
    shifts : bins by which each window is shifted; outputs are averaged over them.
    batch_size : windows per trunk pass; windows are processed in (repeat, time) order so that
        one batch's windows share most of their bins.
    dtype : ``"float32"`` (exact) or ``"bfloat16"``: matrix products in bfloat16 with float32
        accumulation (``torch.autocast``), 2–4× faster on CPUs with AVX-512 BF16 / AMX; outputs
        differ from float32 by about 1e-2 relative (measured in benchmarks/bench_encoder_inference.py).
    """
    if model.training:
        raise ValueError("predict_windows needs the model in eval mode")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    device = next(model.parameters()).device
    mask = None if unit_mask is None else unit_mask.to(device=device, dtype=torch.float32)
    base = window_starts(dataset, pairs)
    order = np.lexsort((base, pairs[:, 0]))
    window, responses = dataset.window, dataset.responses
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        total = None
        for shift in shifts:
            starts = window_starts(dataset, pairs[idx], shift)
            front = torch.empty((len(idx), window, model.body.conv_channels_out), device=device)
            local = getattr(model, "local", None)
            chunks = None if local is None else torch.empty((len(idx), local.chunks, dataset.n_units), device=device)
            for repeat in np.unique(pairs[idx, 0]):
                rows = np.flatnonzero(pairs[idx, 0] == repeat)
                first, last = int(starts[rows].min()), int(starts[rows].max()) + window
                segment = torch.from_numpy(np.array(responses[repeat, first:last], dtype=np.float32))
                segment = segment.to(device)
                if mask is not None:
                    segment = segment * mask
                starts_in = torch.from_numpy(starts[rows] - first).to(device)
                at = torch.from_numpy(rows).to(device)
                with autocast:
                    front[at] = shared_front(model.body, segment, starts_in, window).float()
                if chunks is not None:
                    chunks[at] = chunk_means(segment, starts_in, window, local.chunks)
            with autocast:
                if chunks is None:
                    out = model.decode(*model.body.trunk(front)).float()
                else:
                    out = model.decode(*model.body.trunk(front), chunks).float()
            total = out if total is None else total.add_(out)
        yield idx, (total if len(shifts) == 1 else total.div_(len(shifts))).float().cpu()
