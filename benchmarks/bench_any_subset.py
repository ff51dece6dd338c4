"""Any-subset quality: one all-unit model queried with one population vs models fitted on it alone.

Issue 15 §4: queried with one area group or cell type, the one trained model must not trail a
model fitted on that population alone by more than 10 % relative, within ±1 s.

Data: the simulated session of ``bench_encoder_generalisation.py`` (``--seed``, a stand-in for a
recording), first ``--frames`` frames, the ``repeats`` split (whole repeats held out). Readout:
the centred full-patch cosine, every frame a candidate; ±1 s = the top frame within 30 frames.

For every population with at least ``--min-units`` units (area groups V1, higher_visual, LGd,
visual, hippocampus; each area; each optotagged cell type):

- *one model*: the all-unit encoder (``--variant``), queried with ``units=<population>`` (the
  other units at z-score 0);
- *alone*: the same recipe fitted on the population's units only (same split, budget, seed);
- *kNN alone*: PCA + cosine kNN template readout fitted on the population alone (context).

Printed: ±1 s and R@10 of each, the relative gap (one model vs alone), whether it is within
10 %, the budget and the load.

With ``--run runs/<name>`` the data are a run's instead: its ingested dataset (every unit, every
frame), its patch targets, its active split and its stimulus's shots (``runio``; read only).

Run: ``python benchmarks/bench_any_subset.py --seed 11 --units 600 [--variant demo]`` or
``python benchmarks/bench_any_subset.py --run runs/demo --populations group:V1,group:LGd --max-steps 200``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_encoder_generalisation import (  # noqa: E402  (a sibling benchmark script)
    VARIANTS,
    build_data,
    fit_knn,
    identify,
    make_regime,
    parse_method,
)

POPULATIONS = ["group:V1", "group:higher_visual", "group:LGd", "group:visual", "group:hippocampus", "area:LP",
               "cell_type:PV", "cell_type:SST", "cell_type:VIP"]


def restrict(dataset, mask: np.ndarray):
    """The dataset with only the units of ``mask`` (z-score statistics kept per unit)."""
    from neurrator.preprocess.types import ZScoreStats

    return replace(dataset, responses=np.ascontiguousarray(dataset.responses[..., mask]),
                   units=dataset.units[mask], zscore=ZScoreStats(dataset.zscore.mean[mask], dataset.zscore.std[mask]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="read the data of this run instead of simulating (read only)")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--units", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--variant", default="demo", help="encoder variant (see bench_encoder_generalisation)")
    parser.add_argument("--populations", default=",".join(POPULATIONS))
    parser.add_argument("--min-units", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--val-every", type=int, default=50)
    parser.add_argument("--patience", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from neurrator.core.errors import InputError
    from neurrator.encoder import Neurrator
    from neurrator.preprocess.io import load_split
    from neurrator.preprocess.subsets import subset_mask

    if args.run:
        from neurrator import runio
        from neurrator.rundir import RunDir

        run = RunDir(args.run)
        dataset, targets, split = runio.read_dataset(run), runio.read_targets(run), runio.read_split(run)
        shots = runio.read_stimulus(run).shot_of_frame
        args.frames = targets.n_frames
        source = f"run {args.run} ({split.name} split, every frame)"
    else:
        dataset, targets, shots = build_data(args.seed, args.units, args.repeats, False)
        root = Path(__file__).resolve().parents[1] / "runs" / f"bench-generalisation-s{args.seed}-u{args.units}-r{args.repeats}"
        split = make_regime("repeats", load_split(root / "ingest" / "split.json"), args.frames, 0, 0)
        source = f"simulated session seed {args.seed} (stand-in), repeats split, first {args.frames} frames"
    name, params = parse_method(args.variant)
    params = dict(params or VARIANTS["demo"])
    budget = {"max_steps": args.max_steps, "val_every": args.val_every, "patience": args.patience,
              "max_epochs": 1000, "progress": False}
    train_frames = np.unique(split.train[:, 1])
    mean = np.asarray(targets.patches[train_frames], dtype=np.float32).mean(axis=0)
    candidates = np.arange(args.frames)
    load = os.getloadavg()
    print(f"data: {source}, {dataset.n_units} units; variant {name} {params}; budget ≤ {args.max_steps} steps, validation every "
          f"{args.val_every}, patience {args.patience}; load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")

    def scores(est, data, units=None):
        pred = est.predict(data, split.test, units=units).numpy()
        return identify(pred, split.test[:, 1], candidates, targets, mean, shots, 30)

    t0 = time.process_time()
    one = Neurrator(seed=0, **{**budget, **params}).fit(dataset, targets, split)
    full = scores(one, dataset)
    print(f"all {dataset.n_units} units: ±1 s {full.within_1s:.3f}, R@10 {full.r10:.3f} (chance ±1 s "
          f"{full.chance_1s:.3f}); fit {one.meta_.metrics['steps']} steps, {time.process_time() - t0:.0f} CPU s")
    print(f"{'population':22s} {'units':>5s} {'one ±1s':>8s} {'alone ±1s':>9s} {'gap':>7s} {'≤10%':>5s} "
          f"{'one R@10':>8s} {'alone R@10':>10s} {'kNN ±1s':>8s}")
    for spec in args.populations.split(","):
        try:
            mask = subset_mask(dataset.units, spec)
        except InputError:
            continue
        if mask.sum() < args.min_units:
            print(f"{spec:22s} {int(mask.sum()):5d}  (fewer than {args.min_units} units: skipped)")
            continue
        queried = scores(one, dataset, units=mask)
        alone_data = restrict(dataset, mask)
        alone = scores(Neurrator(seed=0, **{**budget, **params}).fit(alone_data, targets, split), alone_data)
        knn_predict, _ = fit_knn(alone_data, targets, split, 0)
        knn = identify(knn_predict(split.test), split.test[:, 1], candidates, targets, mean, shots, 30)
        gap = (alone.within_1s - queried.within_1s) / max(alone.within_1s, 1e-12)
        print(f"{spec:22s} {int(mask.sum()):5d} {queried.within_1s:8.3f} {alone.within_1s:9.3f} {gap:+7.1%} "
              f"{'yes' if gap <= 0.10 else 'NO':>5s} {queried.r10:8.3f} {alone.r10:10.3f} {knn.within_1s:8.3f}",
              flush=True)
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {time.process_time() - t0:.0f} CPU s")


if __name__ == "__main__":
    main()
