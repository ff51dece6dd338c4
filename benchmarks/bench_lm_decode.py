"""LM-backbone decoders: training and inference windows/s per backbone and training mode, and
peak RSS, beside the machine's load.

Each configuration runs in its own process (its peak RSS is its own) on a planted dataset of
the demo's shape (``--units`` units, 20-bin windows at 120 Hz) with a behaviour target:

- training windows/s: the encoder loop's own count (training steps only, validation excluded),
  over ``--steps`` optimizer steps of ``--batch`` windows after one warm-up validation block;
- inference windows/s: ``predict`` on ``--infer`` windows (batch 256);
- peak RSS of the process, and the seconds to build the decoder (backbone load included).

Backbones: ``smollm2`` (the offline SmolLM2-135M-Instruct, pretrained and random init), a
transformer from scratch with matched trainable parameters, and any ``--backbone`` hub id or
folder (e.g. ``gpt2`` when it is cached). Modes: frozen, lora, full.

Usage::

    python benchmarks/bench_lm_decode.py                     # smollm2 × {frozen, lora, full} + random + scratch, × {bf16, fp32}
    python benchmarks/bench_lm_decode.py --layers 30 --seq-bins 20 --steps 8    # the whole model
    python benchmarks/bench_lm_decode.py --backbone gpt2 --modes frozen lora

Timings are noisy while other processes share the CPU: the load average is printed before and
after every configuration. The comparison of interest is between rows of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

CACHE = ".neurrator-cache"


def child(args: argparse.Namespace) -> None:
    import numpy as np
    import torch

    from neurrator.encoder.lm_decoder import (
        LMDecoderConfig,
        LMDecoderModel,
        load_backbone,
        match_scratch_width,
    )
    from neurrator.encoder.lm_estimator import LMDecoder
    from neurrator.encoder.synthetic import synthetic_problem
    from neurrator.preprocess.behaviour import BehaviourTargets

    torch.set_num_threads(args.threads)
    dataset, _, split = synthetic_problem(n_units=args.units, n_frames=300, n_repeats=6, n_patches=4, dim=4, seed=0)
    rng = np.random.default_rng(0)
    y = BehaviourTargets("running_speed", "cm/s", rng.normal(size=(dataset.n_repeats, dataset.n_frames)), "bench")
    params = {"backbone": args.one_backbone, "n_layers": args.layers, "seq_bins": args.seq_bins,
              "batch_size": args.batch, "max_steps": args.steps + args.warmup, "val_every": args.warmup,
              "patience": 10**6, "mode": args.one_mode, "init": args.one_init, "num_threads": args.threads,
              "cache_dir": CACHE, "progress": False, "precision": args.one_precision}
    if args.one_init == "scratch":
        config = LMDecoderConfig(n_units=dataset.n_units, backbone=args.one_backbone, n_layers=args.layers,
                                 seq_bins=args.seq_bins, mode=args.one_mode, precision=args.one_precision)
        target = LMDecoderModel(config, load_backbone(config, cache_dir=CACHE)).num_parameters()
        params["scratch_width"] = match_scratch_width(config, target)
    split = type(split)(split.name, split.train, split.val[:64], split.test, split.seed)
    t0 = time.perf_counter()
    est = LMDecoder(**params)
    est.fit(dataset, y, split)
    fit_seconds = time.perf_counter() - t0
    history = est.meta_.history
    # every validation block after the warm-up one: total windows / total training seconds
    blocks = [(h["step"] - prev["step"], h["windows_per_s"]) for prev, h in zip(history, history[1:])]
    train_rate = sum(n for n, _ in blocks) / sum(n / max(rate, 1e-9) for n, rate in blocks)
    pairs = np.concatenate([split.train, split.test])[: args.infer]
    est.predict(dataset, pairs[:64])  # warm-up
    t1 = time.perf_counter()
    est.predict(dataset, pairs)
    infer_rate = len(pairs) / (time.perf_counter() - t1)
    print(json.dumps({
        "backbone": args.one_backbone, "init": args.one_init, "mode": args.one_mode,
        "model": est.model_.config.describe, "trainable": est.meta_.metrics["trainable_parameters"],
        "total": est.meta_.metrics["total_parameters"], "train_windows_per_s": round(train_rate, 1),
        "infer_windows_per_s": round(infer_rate, 1), "fit_seconds": round(fit_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="smollm2", help="hub id, folder, or smollm2 (default)")
    parser.add_argument("--modes", nargs="+", default=["frozen", "lora", "full"])
    parser.add_argument("--layers", type=int, default=2, help="backbone blocks kept (default 2, the demo's)")
    parser.add_argument("--seq-bins", type=int, default=8, help="tokens per window (default 8, the demo's)")
    parser.add_argument("--units", type=int, default=690, help="input units (default 690: one demo session)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=24, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=4, help="untimed steps before them")
    parser.add_argument("--infer", type=int, default=1024, help="windows predicted")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", nargs="+", choices=["float32", "bfloat16"], default=["bfloat16", "float32"],
                        help="backbone under bf16 autocast (the stage's default) and/or float32; one row each")
    parser.add_argument("--no-controls", action="store_true", help="skip the random-init and scratch rows")
    parser.add_argument("--one-backbone", help=argparse.SUPPRESS)
    parser.add_argument("--one-mode", help=argparse.SUPPRESS)
    parser.add_argument("--one-init", help=argparse.SUPPRESS)
    parser.add_argument("--one-precision", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_backbone:
        child(args)
        return

    jobs = [(args.backbone, "pretrained", m) for m in args.modes]
    if not args.no_controls:
        jobs += [(args.backbone, "random", "frozen"), (args.backbone, "scratch", "frozen")]
    print(f"# bench_lm_decode: {args.units} units, {args.layers} backbone blocks, {args.seq_bins} tokens/window, "
          f"batch {args.batch}, {args.steps} timed steps, {args.threads} thread(s); "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    header = (f"{'model':62s} {'precision':>9s} {'trainable':>10s} {'train w/s':>10s} {'infer w/s':>10s} "
              f"{'peak RSS MB':>11s} {'fit s':>7s}  load before/after")
    print(header)
    forwarded = []
    for name in ("layers", "seq_bins", "units", "batch", "steps", "warmup", "infer", "threads"):
        forwarded += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    for (backbone, init, mode), precision in ((job, p) for job in jobs for p in args.precision):
        before = os.getloadavg()[0]
        out = subprocess.run([sys.executable, __file__, "--one-backbone", backbone, "--one-init", init,
                              "--one-mode", mode, "--one-precision", precision, *forwarded],
                             capture_output=True, text=True, check=False)
        after = os.getloadavg()[0]
        lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
        if out.returncode or not lines:
            print(f"{backbone} {init} {mode} {precision}: failed "
                  f"({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode})")
            continue
        r = json.loads(lines[-1])
        label = r['model']  # names the init, the mode and the layers kept
        print(f"{label[:62]:62s} {precision:>9s} {r['trainable']:>10,d} {r['train_windows_per_s']:>10.1f} "
              f"{r['infer_windows_per_s']:>10.1f} {r['peak_rss_mb']:>11.0f} {r['fit_seconds']:>7.1f}  {before:.2f}/{after:.2f}")


if __name__ == "__main__":
    main()
