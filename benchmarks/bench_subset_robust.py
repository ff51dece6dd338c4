"""Fidelity against subset size, with and without subset-robust training.

Two encoders are trained on the same planted session with the same budget: one with ordinary
10 % unit dropout only, one that also sees random unit subsets (keep 1 … all units,
log-uniform) on half of its windows. Both are then queried with random subsets of k units
(the rest masked to z-score 0) and scored by test patch cosine, averaged over several draws.

Usage: ``python benchmarks/bench_subset_robust.py [--quick]``.
Timings are noisy: other processes share the 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurrator.encoder import Neurrator
from neurrator.encoder.synthetic import synthetic_problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller session and fewer epochs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--fraction", type=float, default=0.25, help="share of windows given a random subset")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_units, n_frames, epochs, draws = (240, 150, 6, 3) if args.quick else (400, 300, 10, 5)
    dataset, targets, split = synthetic_problem(n_units=n_units, n_frames=n_frames, n_repeats=6, n_patches=64,
                                                dim=16, seed=0)
    print(f"planted session: {n_units} units ({int(0.8 * n_units * 0.8)} tuned in expectation), {n_frames} frames "
          f"× 6 repeats, target 64 × 16; demo preset (basis head), {epochs} epochs each, subset share "
          f"{args.fraction}, {args.threads} thread(s)")

    models = {}
    for robust in (False, True):
        t0 = time.perf_counter()
        models[robust] = Neurrator(seed=0, subset_robust=robust, subset_fraction=args.fraction, max_epochs=epochs, windows_per_epoch=0,
                                   max_minutes=0, progress=False).fit(dataset, targets, split)
        print(f"  subset_robust={robust!s:5s}: trained in {time.perf_counter() - t0:.0f} s, "
              f"val cosine {models[robust].meta_.metrics['val_cosine']:.4f}")
    floor = models[False].meta_.metrics["mean_patch_baseline"]

    sizes = [k for k in (1, 3, 10, 30, 100, n_units // 2, n_units) if k <= n_units]
    rng = np.random.default_rng(1)
    print(f"\ntest patch cosine vs number of units queried (mean over {draws} random subsets; "
          f"mean-patch floor {floor:.4f})")
    print(f"{'units':>6s} {'dropout only':>13s} {'subset-robust':>14s} {'gain':>8s}")
    gains = []
    for k in sizes:
        draws_k = 1 if k == n_units else draws
        subsets = [np.isin(np.arange(n_units), rng.choice(n_units, k, replace=False)) for _ in range(draws_k)]
        plain = np.mean([models[False].score(dataset, split.test, targets, units=m) for m in subsets])
        robust = np.mean([models[True].score(dataset, split.test, targets, units=m) for m in subsets])
        gains.append(robust - plain)
        print(f"{k:>6d} {plain:>13.4f} {robust:>14.4f} {robust - plain:>+8.4f}")
    print(f"\nmean gain over subset sizes: {np.mean(gains):+.4f}; at all units: {gains[-1]:+.4f}")


if __name__ == "__main__":
    main()
