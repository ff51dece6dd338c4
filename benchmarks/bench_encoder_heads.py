"""Faithful patch-query head vs the fast PCA-basis head, and pooled vs sequence memory.

Same planted session, same body (the paper's: conv 3/7/15 × 128, d_model 384, 2 layers, 8 heads),
same optimiser, same wall-time budget per model. Prints, side by side:

- seconds per epoch (one pass over every training window, from measured training windows/s)
  and their ratio;
- validation and test patch cosine reached within the equal wall-time budget, against the
  mean-patch floor;
- the same for the faithful head with pooled (paper text) vs sequence (released code) memory.

Usage: ``python benchmarks/bench_encoder_heads.py [--quick] [--budget SECONDS]``.
Timings are noisy: other processes share the 2 CPU cores.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from neurrator.encoder import Neurrator
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.preprocess.types import Split


def train_and_score(dataset, targets, split, budget: float, test_windows: int, **params) -> dict:
    """Train one model for ``budget`` seconds; score it on (a subset of) the test repeat."""
    common = {"batch_size": 32, "windows_per_epoch": 128, "max_epochs": 10_000, "patience": 10_000,
                  "max_minutes": budget / 60, "progress": False, "lr": 1e-3}
    est = Neurrator(seed=0, **{**common, **params}).fit(dataset, targets, split)
    windows_per_s = float(np.median([h["windows_per_s"] for h in est.history_]))
    test = split.test[np.linspace(0, len(split.test) - 1, min(test_windows, len(split.test))).astype(int)]
    t0 = time.perf_counter()
    score = est.score(dataset, test, targets, batch_size=64)
    return {
        "params": est.model_.num_parameters(), "windows_per_s": windows_per_s, "s_per_epoch": len(split.train) / windows_per_s,
        "trained": len(est.history_) * common["windows_per_epoch"], "val": est.meta_.metrics["val_cosine"], "test": score,
        "infer": len(test) / (time.perf_counter() - t0), "floor": est.meta_.metrics["mean_patch_baseline"],
    }


def planted(n_units: int, n_frames: int, n_patches: int, dim: int) -> tuple:
    dataset, targets, split = synthetic_problem(n_units=n_units, n_frames=n_frames, n_repeats=6,
                                                n_patches=n_patches, dim=dim, seed=0)
    # Validation (model selection) on a 64-window subset so that evaluating the slow head does not
    # eat its training budget; the reported score is on the held-out test repeat.
    val = split.val[np.random.default_rng(0).choice(len(split.val), 64, replace=False)]
    return dataset, targets, Split(split.name, split.train, val, split.test, split.seed)


def print_table(rows: dict) -> None:
    header = f"{'model':44s} {'params':>10s} {'train win/s':>11s} {'s/epoch':>8s} {'windows seen':>12s} " \
             f"{'val cos':>8s} {'test cos':>8s} {'infer win/s':>11s}"
    print(header)
    print("-" * len(header))
    for name, r in rows.items():
        print(f"{name:44s} {r['params']:>10,d} {r['windows_per_s']:>11.1f} {r['s_per_epoch']:>8.1f} "
              f"{r['trained']:>12d} {r['val']:>8.4f} {r['test']:>8.4f} {r['infer']:>11.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller session and 30 s per model")
    parser.add_argument("--budget", type=float, default=None, help="training seconds per model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = args.budget or (30.0 if args.quick else 90.0)
    n_units, n_frames = (200, 160) if args.quick else (400, 300)

    # 1. Heads at the paper's size: 576 patch queries, paper body (d_model 384, conv 128 ch).
    dataset, targets, split = planted(n_units, n_frames, 576, 64)
    print(f"A. planted session: {n_units} units, {n_frames} frames × 6 repeats, target 576 × 64, "
          f"{len(split.train)} training windows; paper body for both heads; {budget:.0f} s of training "
          f"(incl. 64-window validation) per model, {args.threads} thread(s)")
    rows = {
        "fast: PCA-basis head": train_and_score(dataset, targets, split, budget, 160, preset="paper", head="basis"),
        "faithful: 576 queries (pooled memory)": train_and_score(dataset, targets, split, budget, 64,
                                                                   preset="paper", head="patches", memory="pooled"),
    }
    print(f"mean-patch floor (validation subset): {rows['fast: PCA-basis head']['floor']:.4f}")
    print_table(rows)
    fast, faithful = rows["fast: PCA-basis head"], rows["faithful: 576 queries (pooled memory)"]
    print(f"seconds per epoch, faithful / fast: {faithful['s_per_epoch'] / fast['s_per_epoch']:.1f}x (goal >= 10x)")
    verdict = "fast is equal or better" if fast["test"] >= faithful["test"] else "FAST IS WORSE"
    print(f"test patch cosine at equal wall time ({budget:.0f} s): fast {fast['test']:.4f} vs faithful "
          f"{faithful['test']:.4f} ({verdict})")

    # 2. Pooled vs sequence memory. At 576 queries the faithful head gets too few steps in the
    # budget to tell the two apart, so compare them where both can train: 64 patches, d_model 128.
    dataset, targets, split = planted(n_units, n_frames, 64, 16)
    print(f"\nB. memory of the patch-query head: same session, target 64 × 16, demo-width body "
          f"(d_model 128), {budget:.0f} s each")
    rows = {
        f"faithful head, {memory} memory": train_and_score(dataset, targets, split, budget, 160, head="patches",
                                                            memory=memory)
        for memory in ("sequence", "pooled")
    }
    rows["fast head (reference)"] = train_and_score(dataset, targets, split, budget, 160, head="basis")
    print(f"mean-patch floor (validation subset): {rows['fast head (reference)']['floor']:.4f}")
    print_table(rows)
    seq, pooled = rows["faithful head, sequence memory"]["test"], rows["faithful head, pooled memory"]["test"]
    print(f"memory at equal wall time: sequence {seq:.4f} vs pooled {pooled:.4f} -> "
          f"{'sequence' if seq > pooled else 'pooled'} is better here")


if __name__ == "__main__":
    main()
