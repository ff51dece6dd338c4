"""Batch inference speed of the encoder on one CPU thread, window gathering included.

Target (issue 15 §5): ≥ 5,000 windows/s at the demo preset for 2,000 units, including window
gathering. Today's figures (the issue's measurement): 267 windows/s for the whole path, 1,416 for
the model alone.

A planted 2,000-unit session (``encoder.synthetic``, 900 frames × ``--repeats`` repeats) is written
to disk and memory-mapped like a run's ``ingest/dataset/``; targets are 576 × 64 (the offline
space). An untrained demo-preset model with a random PCA basis is timed (speed does not depend on
the weights). Printed side by side, in one run:

- *per-window path*: gather each window (``WindowSampler.gather``) and run the model on it — the
  path before :mod:`neurrator.encoder.inference`;
- *model alone*: the forward pass on pre-gathered windows;
- *shared-bin path*: ``Neurrator.predict`` (each 120 Hz bin projected once for all windows that
  share it), from the memory-mapped dataset, all frames of the test repeats;
- the same with temporal ensembling over 2 shifts;
- the shared-bin path with ``inference_dtype="bfloat16"`` (and its difference from float32).

Run: ``python benchmarks/bench_encoder_inference.py [--units 2000] [--repeats 4] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

TODAY = {"whole path": 267.0, "model alone": 1416.0}
TARGET = 5000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--frames", type=int, default=900)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from neurrator.encoder import EncoderConfig, Neurrator
    from neurrator.encoder.checkpoint import CheckpointMeta
    from neurrator.encoder.estimator import _model_config
    from neurrator.encoder.model import NeurratorPatches
    from neurrator.encoder.synthetic import synthetic_problem
    from neurrator.encoder.train import WindowSampler
    from neurrator.preprocess.io import load_dataset, save_dataset

    tmp = Path(tempfile.mkdtemp(prefix="bench-inference-"))
    dataset, targets, split = synthetic_problem(n_units=args.units, n_frames=args.frames, n_repeats=args.repeats,
                                                n_patches=576, dim=64, seed=0)
    save_dataset(dataset, tmp / "dataset")
    del dataset
    dataset = load_dataset(tmp / "dataset", mmap=True)

    config = EncoderConfig().resolved()
    torch.manual_seed(0)
    model = NeurratorPatches(_model_config(config, args.units, 576, 64))
    n = 576 * 64
    model.head.basis.set(torch.randn(n), torch.linalg.qr(torch.randn(n, config.basis_rank))[0].T.contiguous(),
                         torch.rand(config.basis_rank))
    model.eval()
    est = Neurrator(seed=0)
    est.model_ = model
    est.meta_ = CheckpointMeta(
        kind="patches", model_config=model.config.to_dict(), encoder_config=config.model_dump(mode="json"),
        unit_ids=dataset.unit_ids.tolist(), zscore_mean=dataset.zscore.mean.tolist(),
        zscore_std=dataset.zscore.std.tolist(), space=targets.info.to_dict(), target_shape=[576, 64], seed=0,
        split={"name": split.name})
    pairs = split.test  # every frame of the test repeat
    sampler = WindowSampler(dataset)
    load = os.getloadavg()
    print(f"{args.units} units, {len(pairs)} windows (all frames of the test repeat), demo preset "
          f"({model.num_parameters():,} parameters), {args.threads} thread(s), batch {args.batch}; "
          f"dataset memory-mapped from {tmp}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")

    def rate(fn, n_windows: int, repeat: int = 2) -> float:
        fn()  # warm-up (page cache, allocator)
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return n_windows / best

    def per_window():
        with torch.no_grad():
            for lo in range(0, len(pairs), args.batch):
                model(sampler.gather(pairs[lo : lo + args.batch]))

    windows = [sampler.gather(pairs[lo : lo + args.batch]) for lo in range(0, len(pairs), args.batch)]

    def model_alone():
        with torch.no_grad():
            for x in windows:
                model(x)

    rows = [
        ("per-window path (gather + model)", rate(per_window, len(pairs)), TODAY["whole path"]),
        ("model alone (pre-gathered windows)", rate(model_alone, len(pairs)), TODAY["model alone"]),
        ("shared-bin path: Neurrator.predict", rate(lambda: est.predict(dataset, pairs, batch_size=args.batch),
                                                     len(pairs)), TODAY["whole path"]),
        ("  + temporal ensemble, shifts (-1, 0)",
         rate(lambda: est.predict(dataset, pairs, batch_size=args.batch, shifts=(-1, 0)), len(pairs)), None),
    ]
    exact = est.predict(dataset, pairs, batch_size=args.batch)
    est.set_params(inference_dtype="bfloat16")
    rows.append(("shared-bin path, inference_dtype=bfloat16",
                 rate(lambda: est.predict(dataset, pairs, batch_size=args.batch), len(pairs)), TODAY["whole path"]))
    fast = est.predict(dataset, pairs, batch_size=args.batch)
    mean = model.head.basis.mean.view(1, 576, 64)
    rel = ((fast - exact).norm() / (exact - mean).norm()).item()
    print(f"{'path':42s} {'windows/s':>10s} {'today':>8s} {'target':>8s}")
    for name, value, today in rows:
        print(f"{name:42s} {value:10.0f} {today if today else '-':>8} {TARGET if 'shared' in name else '-':>8}")
    print(f"bfloat16 vs float32 outputs: relative difference {rel:.2e} (of the deviation from the mean patch)")
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
