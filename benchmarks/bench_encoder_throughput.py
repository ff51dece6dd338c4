"""Training and inference throughput and peak memory at the paper's scale: 2,000 units.

A planted 2,000-unit session is written to disk and memory-mapped like a real run's
``ingest/dataset/``; targets are a memory-mapped float16 array of 576 × 1024 (CLIP-sized) or
576 × 64 (the offline oriented-energy space). Each configuration trains in its own process so
that its peak RSS is its own. Printed side by side:

- training windows/s (second epoch, after warm-up) and seconds per epoch over all training
  windows of a 900-frame × 18-repeat session (16,200 windows);
- batched CPU inference windows/s;
- peak RSS of the process.

Usage: ``python benchmarks/bench_encoder_throughput.py [--quick]``.
Timings are noisy: other processes share the 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

EPOCH_WINDOWS = 900 * 18  # natural_movie_one, 18 training repeats


def child(args: argparse.Namespace) -> None:
    import torch

    from neurrator.encoder import Neurrator
    from neurrator.preprocess.io import load_dataset, load_split
    from neurrator.preprocess.types import Split
    from neurrator.vision.base import PatchTargets, SpaceInfo

    torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, mmap=True)
    split = load_split(Path(args.dataset).parent / "split.json")
    patches = np.load(args.targets, mmap_mode="r")
    info = SpaceInfo(f"bench-576x{patches.shape[2]}", (24, 24), int(patches.shape[2]), "planted", True)
    targets = PatchTargets(patches, info, "bench")
    split = Split(split.name, split.train, split.val[:32], split.test, split.seed)
    params = json.loads(args.params)
    batch = params.get("batch_size", 64)
    est = Neurrator(seed=0, max_epochs=2, max_minutes=0, progress=False, windows_per_epoch=args.steps * batch,
                    eval_batch_size=32, **params).fit(dataset, targets, split)
    train_rate = est.history_[-1]["windows_per_s"]
    n_infer = args.infer
    t0 = time.perf_counter()
    est.predict(dataset, split.test[:n_infer], batch_size=args.infer_batch, dtype=torch.float16)
    infer_rate = n_infer / (time.perf_counter() - t0)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"train": train_rate, "infer": infer_rate, "rss": rss_mb, "params": est.model_.num_parameters()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer frames, fewer steps, skip one configuration")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    for name in ("dataset", "targets", "params"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name, default in (("threads", 1), ("steps", 2), ("infer", 256), ("infer-batch", 256)):
        parser.add_argument(f"--{name}", type=int, default=default, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from neurrator.encoder.synthetic import synthetic_problem
    from neurrator.preprocess.io import save_dataset, save_split

    n_frames, n_repeats = (300, 6) if args.quick else (900, 20)
    tmp = Path(tempfile.mkdtemp(prefix="bench-encoder-"))
    t0 = time.perf_counter()
    dataset, small, split = synthetic_problem(n_units=2000, n_frames=n_frames, n_repeats=n_repeats, n_patches=576,
                                              dim=64, seed=0)
    save_dataset(dataset, tmp / "dataset")
    save_split(split, tmp / "split.json")
    np.save(tmp / "targets64.npy", np.asarray(small.patches))
    del dataset, small
    _, clip_sized, _ = synthetic_problem(n_units=4, n_frames=n_frames, n_repeats=3, n_patches=576, dim=1024, seed=0)
    np.save(tmp / "targets1024.npy", np.asarray(clip_sized.patches))
    del clip_sized
    print(f"2,000-unit planted session: {n_frames} frames × {n_repeats} repeats, written and memory-mapped "
          f"in {time.perf_counter() - t0:.0f} s ({tmp})")

    faithful_batch = 16 if args.quick else 32
    configs = [
        ("demo preset (fast head)", 64, {}, 1, 8, 256),
        ("demo preset (fast head), 2 threads", 64, {}, 2, 8, 256),
        ("demo preset (fast head)", 1024, {}, 1, 8, 256),
        ("paper body + fast head", 1024, {"preset": "paper", "head": "basis"}, 1, 2, 128),
        ("paper preset (faithful head)", 1024, {"preset": "paper", "batch_size": faithful_batch}, 1, 1, 32),
        ("paper preset (faithful head)", 64, {"preset": "paper", "batch_size": faithful_batch}, 1, 1, 32),
    ]
    if args.quick:
        configs = [c for c in configs if not (c[0].startswith("paper preset") and c[1] == 64)]
    header = f"{'configuration':38s} {'target':>9s} {'params':>11s} {'train win/s':>11s} {'s/epoch*':>9s} " \
             f"{'infer win/s':>11s} {'peak RSS MB':>11s}"
    print(header)
    print("-" * len(header))
    for name, dim, params, threads, steps, infer in configs:
        cmd = [sys.executable, __file__, "--child", "--dataset", str(tmp / "dataset"),
               "--targets", str(tmp / f"targets{dim}.npy"), "--params", json.dumps(params),
               "--threads", str(threads), "--steps", str(steps), "--infer", str(infer),
               "--infer-batch", str(min(infer, 256))]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
        if out.returncode != 0:
            print(f"{name:38s} 576×{dim:<5d} FAILED: {out.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:38s} {'576×' + str(dim):>9s} {r['params']:>11,d} {r['train']:>11.1f} "
              f"{EPOCH_WINDOWS / r['train']:>9.0f} {r['infer']:>11.1f} {r['rss']:>11.0f}")
    print(f"* seconds per epoch over {EPOCH_WINDOWS:,} training windows (900 frames × 18 repeats), from the "
          "measured rate; 1 thread unless stated")


if __name__ == "__main__":
    main()
