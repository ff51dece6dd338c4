"""Retrieval narration speed: sentences per second of ``RetrievalNarrator`` on one CPU thread.

Targets (issue 15 §5): ≥ 1,000 sentences/s at 576 × 64 and ≥ 200/s at 576 × 1024. Today's figure
(the issue's measurement of the exhaustive path on the demo): 266 sentences/s at 576 × 64.

Inputs: a caption bank of ``--bank`` frames of a synthetic movie (shots of a fixed pattern plus
a slow drift, float16 like the target cache) and noisy queries of every frame. Each space is
timed two ways in the same run:

- *exhaustive*: :func:`neurrator.narrate.retrieval.similarity` against the whole bank, then a
  stable sort per query (the path before :class:`BankIndex`);
- *indexed*: ``RetrievalNarrator.narrate`` (bank normalised once; exhaustive product for small
  spaces, bounded reduced-space search + exact re-ranking for large ones). The index build is
  timed apart (it happens once per narrator).

The two must return the same captions (checked and printed). The load average is printed beside
the figures; the lead re-times them on an idle machine.

Run: ``python benchmarks/bench_retrieval_speed.py [--bank 900] [--queries 1800] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from neurrator.narrate import CaptionBank, RetrievalNarrator
from neurrator.narrate.retrieval import similarity

TODAY = {64: 266.0}  # sentences/s, issue 15 (576 × 64, exhaustive path)
TARGET = {64: 1000.0, 1024: 200.0}


def inputs(n_bank: int, n_queries: int, dim: int, seed: int = 0, n_patches: int = 576, shot_len: int = 56):
    rng = np.random.default_rng(seed)
    shots = np.arange(n_bank) // shot_len
    pattern = rng.normal(size=(shots.max() + 1, n_patches, dim)).astype(np.float32)
    patches = np.empty((n_bank, n_patches, dim), dtype=np.float16)
    drift = np.zeros((n_patches, dim), dtype=np.float32)
    for f in range(n_bank):
        drift += rng.normal(scale=0.05, size=drift.shape).astype(np.float32)
        patches[f] = pattern[shots[f]] + drift
    captions = {f: [f"shot {shots[f]} caption"] for f in range(n_bank)}
    bank = CaptionBank.from_training_frames(patches, captions, np.arange(n_bank))
    frames = np.arange(n_queries) % n_bank
    queries = torch.from_numpy(patches[frames].astype(np.float32))
    queries += torch.from_numpy(rng.normal(size=queries.shape).astype(np.float32))
    return bank, queries


def exhaustive(bank: CaptionBank, queries: torch.Tensor, batch: int = 64) -> list[str]:
    texts, out = bank.texts, []
    for lo in range(0, len(queries), batch):
        scores = similarity(queries[lo : lo + batch], bank.patches).numpy()
        out += [texts[row[0]] for row in np.argsort(-scores, axis=1, kind="stable")]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bank", type=int, default=900, help="bank entries (training frames)")
    parser.add_argument("--queries", type=int, default=1800, help="queries (test windows)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores); {args.threads} thread(s); "
          f"bank {args.bank} entries, {args.queries} queries")
    print(f"{'space':>9s} {'path':>11s} {'sentences/s':>12s} {'index build s':>14s} {'same captions':>14s} "
          f"{'today':>7s} {'target':>7s}")
    for dim in (64, 1024):
        bank, queries = inputs(args.bank, args.queries, dim)
        n_ref = args.queries if dim == 64 else min(args.queries, 128)
        t0 = time.perf_counter()
        reference = exhaustive(bank, queries[:n_ref])
        rate_ref = n_ref / (time.perf_counter() - t0)
        narrator = RetrievalNarrator(bank)
        t0 = time.perf_counter()
        index = narrator.index
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = narrator.narrate(queries)
        rate = len(queries) / (time.perf_counter() - t0)
        same = got[:n_ref] == reference
        kind = "exhaustive" if index.exhaustive else f"reduced r={index.basis.shape[1]}"
        today = f"{TODAY[dim]:.0f}" if dim in TODAY else "-"
        print(f"{'576x' + str(dim):>9s} {'exhaustive':>11s} {rate_ref:12.0f} {'-':>14s} {'(reference)':>14s} {today:>7s}")
        print(f"{'576x' + str(dim):>9s} {'indexed':>11s} {rate:12.0f} {build:14.2f} {str(same):>14s} {today:>7s} "
              f"{TARGET[dim]:7.0f}   ({kind})")
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
