"""Narration throughput on CPU: sentences per second for ``retrieval`` and ``retrieval+lm``.

Demo-sized inputs: a caption bank of the 900 demo-movie frames (its 16 captioned shots) in a
576 × 64 patch space, and 1,800 test windows (2 held-out repeats × 900 frames) whose
"predicted" patches are the true frame's patches plus noise. ``retrieval+lm`` is timed with
and without the identical-input cache; the SmolLM2 load is reported apart. The figures are
compared, in the same run, with the ``narrate`` stage budget of the demo (120 s including the
LM load). Timings are noisy when other processes share the CPU: CPU seconds of this process are
printed beside wall seconds (with 2 threads, CPU s ≈ 2 × wall s on an idle machine).

Run: ``python benchmarks/bench_narrate.py [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurrator.data.stimulus import load_stimulus
from neurrator.narrate import CaptionBank, NarrateConfig, RetrievalNarrator, build_narrator
from neurrator.narrate.retrieval_lm import load_language_model

STAGE_BUDGET_S = 120.0


def demo_inputs(n_windows: int, n_patches: int = 576, dim: int = 64, noise: float = 1.0, seed: int = 0):
    """Bank patches with shot structure, the demo captions, and noisy queries of every frame."""
    stimulus = load_stimulus("natural_movie_one", None)
    rng = np.random.default_rng(seed)
    shots = stimulus.shot_of_frame
    shot_patterns = rng.normal(size=(shots.max() + 1, n_patches, dim))
    drift = np.cumsum(rng.normal(scale=0.05, size=(stimulus.n_frames, n_patches, dim)), axis=0)
    patches = (shot_patterns[shots] + drift).astype(np.float16)
    bank = CaptionBank.from_training_frames(patches, stimulus.captions, np.arange(stimulus.n_frames))
    frames = np.arange(n_windows) % stimulus.n_frames
    queries = torch.from_numpy(patches[frames].astype(np.float32) + noise * rng.normal(size=(n_windows, n_patches, dim)).astype(np.float32))
    return bank, queries


CPU_SECONDS: list[float] = []


def timed(fn):
    """Run ``fn``; return its output and wall seconds (CPU seconds are appended to ``CPU_SECONDS``)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    CPU_SECONDS.append(time.process_time() - c0)
    return out, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 windows and 8 uncached sentences")
    args = parser.parse_args()
    n_windows, n_uncached = (300, 8) if args.quick else (1800, 32)
    torch.manual_seed(0)

    bank, queries = demo_inputs(n_windows)
    print(f"inputs: bank {len(bank)} frames × {tuple(bank.patches.shape[1:])}, {n_windows} windows; torch threads {torch.get_num_threads()}")

    retrieval = RetrievalNarrator(bank)
    sentences, seconds = timed(lambda: retrieval.narrate(queries))
    print(f"retrieval            : {n_windows / seconds:9.1f} sentences/s  ({n_windows} in {seconds:.2f} s, "
          f"{len(set(sentences))} distinct; {CPU_SECONDS[-1]:.1f} CPU s)")

    _, load_seconds = timed(load_language_model)
    print(f"SmolLM2 load         : {load_seconds:9.1f} s (once per process; {CPU_SECONDS[-1]:.1f} CPU s)")

    cached = build_narrator(NarrateConfig(narrator="retrieval+lm"), bank=bank)
    sentences, seconds = timed(lambda: cached.narrate(queries))
    print(f"retrieval+lm (cache) : {n_windows / seconds:9.2f} sentences/s  ({n_windows} windows in {seconds:.1f} s; "
          f"{cached.n_generated} LM generations for {len(set(sentences))} distinct sentences; {CPU_SECONDS[-1]:.1f} CPU s)")
    cached_total = seconds

    uncached = build_narrator(NarrateConfig(narrator="retrieval+lm", cache_identical=False), bank=bank)
    _, seconds = timed(lambda: uncached.narrate(queries[:n_uncached]))
    rate = n_uncached / seconds
    print(f"retrieval+lm (none)  : {rate:9.2f} sentences/s  ({n_uncached} windows in {seconds:.1f} s; "
          f"all {n_windows} would take ~{n_windows / rate:.0f} s; {CPU_SECONDS[-1]:.1f} CPU s)")

    print(f"compared with the narrate stage budget of {STAGE_BUDGET_S:.0f} s (LM load included): "
          f"cached {load_seconds + cached_total:.0f} s, uncached ~{load_seconds + n_windows / rate:.0f} s "
          f"for {n_windows} windows; speed-up from the cache {(n_windows / rate) / cached_total:.1f}×")


if __name__ == "__main__":
    main()
