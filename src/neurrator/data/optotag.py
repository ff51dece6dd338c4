"""Identify optotagged PV / SST / VIP units from their responses to light pulses.

A unit of a ``Pvalb``/``Sst``/``Vip``-Cre × Ai32 mouse is tagged with the Cre line's cell type
when, over the 10 ms square pulses of ``/processing/optotagging/optogenetic_stimulation``:

1. its evoked rate in ``[+1, +9]`` ms after pulse onset exceeds ``min_ratio`` × (baseline rate in
   ``[−10, −2]`` ms + ``baseline_offset_hz``) — the common rule used with the Allen data
   (evoked / (baseline + 1) > 2);
2. it fires in the evoked window on at least ``min_reliability`` of the pulses (the paper's
   reliability criterion); and
3. its median first-spike latency on responsive pulses is at most ``max_median_latency``
   (direct ChR2 activation is fast; network responses come later).

Set ``min_reliability=0`` and ``max_median_latency=None`` to apply rule 1 alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from neurrator.data.types import SpikeTrains


@dataclass(frozen=True)
class OptotagRule:
    """Parameters of the light-response rule (seconds, Hz). See the module docstring."""

    pulse_stimulus_name: str = "pulse"
    pulse_duration: float = 0.010
    evoked_window: tuple[float, float] = (0.001, 0.009)
    baseline_window: tuple[float, float] = (-0.010, -0.002)
    min_ratio: float = 2.0
    baseline_offset_hz: float = 1.0
    min_reliability: float = 0.2
    max_median_latency: float | None = 0.009


def light_responses(spikes: SpikeTrains, optotagging: pd.DataFrame, rule: OptotagRule = OptotagRule()) -> pd.DataFrame:
    """Per-unit light-response statistics and the tagging decision.

    Parameters
    ----------
    spikes : spike trains of the units to test.
    optotagging : Allen ``optogenetic_stimulation`` table (``start_time``, ``duration``,
        ``stimulus_name``, ...).

    Returns
    -------
    DataFrame indexed by unit id with ``evoked_rate``, ``baseline_rate`` (Hz), ``ratio``,
    ``reliability`` (fraction of pulses), ``median_latency`` (s, NaN if never evoked), ``tagged``.
    """
    pulses = optotagging[
        (optotagging["stimulus_name"].astype(str) == rule.pulse_stimulus_name)
        & (np.abs(optotagging["duration"].astype(float) - rule.pulse_duration) < 1e-4)
    ]
    onsets = np.sort(pulses["start_time"].to_numpy(dtype=float))
    n = len(spikes)
    stats = {k: np.full(n, np.nan) for k in ("evoked_rate", "baseline_rate", "ratio", "reliability", "median_latency")}
    (e0, e1), (b0, b1) = rule.evoked_window, rule.baseline_window
    if len(onsets):
        for i in range(n):
            t = spikes.unit(i)
            ev_lo, ev_hi = np.searchsorted(t, onsets + e0), np.searchsorted(t, onsets + e1)
            bl = np.searchsorted(t, onsets + b1) - np.searchsorted(t, onsets + b0)
            evoked = ev_hi - ev_lo
            stats["evoked_rate"][i] = evoked.sum() / (len(onsets) * (e1 - e0))
            stats["baseline_rate"][i] = bl.sum() / (len(onsets) * (b1 - b0))
            stats["reliability"][i] = (evoked > 0).mean()
            hit = evoked > 0
            if hit.any():
                stats["median_latency"][i] = float(np.median(t[ev_lo[hit]] - onsets[hit]))
        stats["ratio"] = stats["evoked_rate"] / (stats["baseline_rate"] + rule.baseline_offset_hz)
    tagged = (stats["ratio"] > rule.min_ratio) & (stats["reliability"] >= rule.min_reliability)
    if rule.max_median_latency is not None:
        tagged &= stats["median_latency"] <= rule.max_median_latency
    out = pd.DataFrame(stats, index=pd.Index(spikes.unit_ids, name="unit_id"))
    out["tagged"] = np.nan_to_num(tagged, nan=0).astype(bool)
    return out
