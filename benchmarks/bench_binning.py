"""Binning throughput: vectorised ``bin_spikes`` against a per-unit ``np.histogram`` loop.

2,000 units × 20 repeats of natural_movie_one (900 frames, 4 bins per frame at 120 Hz, each
frame's bins aligned to its own jittered start time). Both produce identical counts (checked).
Timings are best-of-N process CPU time and wall time; other processes share the CPU, so treat
them as noisy.

    python benchmarks/bench_binning.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neurrator.data.types import SpikeTrains
from neurrator.preprocess.binning import bin_spikes, histogram_reference


def synthetic_spikes(n_units: int, n_repeats: int, n_frames: int, seed: int = 0) -> tuple[SpikeTrains, np.ndarray]:
    """Log-normal-rate Poisson units over a movie epoch with 0.1 ms frame-time jitter."""
    rng = np.random.default_rng(seed)
    starts = 100 + np.arange(n_repeats * n_frames) / 30 + rng.normal(0, 1e-4, n_repeats * n_frames)
    starts = starts.reshape(n_repeats, n_frames)
    t0, t1 = 95.0, starts[-1, -1] + 5.0
    rates = rng.lognormal(np.log(4.0), 0.9, n_units)
    parts = [np.sort(rng.uniform(t0, t1, rng.poisson(r * (t1 - t0)))) for r in rates]
    offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return SpikeTrains(np.concatenate(parts), offsets, np.arange(n_units, dtype=np.int64)), starts


def best_of(fn, repeats: int) -> tuple[float, float, object]:
    cpu, wall, out = [], [], None
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        out = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return min(cpu), min(wall), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="time the histogram loop on 200 units and scale ×10")
    args = parser.parse_args()
    n_units, n_repeats, n_frames = 2000, 20, 900
    spikes, starts = synthetic_spikes(n_units, n_repeats, n_frames)
    print(f"{n_units} units × {n_repeats} repeats × {n_frames} frames × 4 bins; {len(spikes.times):,} spikes")

    out = np.zeros((n_repeats, n_frames * 4, n_units), dtype=np.float32)
    fast_cpu, fast_wall, fast = best_of(lambda: bin_spikes(spikes, starts, out=out), 5)
    ref_units = 200 if args.quick else n_units
    scale = n_units / ref_units
    sub = spikes.select(np.arange(ref_units))
    slow_cpu, slow_wall, slow = best_of(lambda: histogram_reference(sub, starts), 1 if not args.quick else 2)
    slow_cpu, slow_wall = slow_cpu * scale, slow_wall * scale
    assert np.array_equal(fast[:, :, :ref_units], slow), "binning disagrees with the np.histogram loop"

    print(f"{'method':<34}{'CPU s':>9}{'wall s':>9}{'Mspikes/s (CPU)':>18}")
    for name, c, w in (("vectorised bin_spikes", fast_cpu, fast_wall),
                       (f"per-unit np.histogram loop{' (×10 est.)' if args.quick else ''}", slow_cpu, slow_wall)):
        print(f"{name:<34}{c:>9.3f}{w:>9.3f}{len(spikes.times) / c / 1e6:>18.1f}")
    print(f"speed-up: {slow_cpu / fast_cpu:.1f}× (CPU), {slow_wall / fast_wall:.1f}× (wall); counts identical")


if __name__ == "__main__":
    main()
