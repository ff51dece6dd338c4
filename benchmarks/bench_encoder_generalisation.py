"""Does the encoder learn a map or a lookup? Encoder variants vs Ridge / kNN under one readout.

A stand-in measurement until the benchmark's zero-shot table exists (issue 10 §4); every figure
is printed beside its computed chance, the budget and the machine load.

Data: a simulated Allen-layout session (``neurrator.data.simulate``, a stand-in for a recording)
watching the embedded demo movie, restricted to its first ``--frames`` frames; targets in the
offline oriented-energy space (576 × 64, a stand-in for CLIP). Built once per seed into
``runs/bench-generalisation-<seed>/`` (simulate → ingest → embed stages).

Regimes (leak-free by construction): ``repeats`` (the ingest split: whole repeats held out,
every frame a candidate); ``contiguous_middle`` and ``front_only`` as in
``preprocess.splits`` but restricted to the first ``--frames`` frames, with every training and
validation frame purged whose training windows (bin offsets and jitter included) could share a
bin with a test window of the same repeat, and candidates restricted to the held-out frames
(zero-shot identification). Each regime is z-scored with its own training windows.

Readout (one for every method): cosine between full patch tensors centred on the mean
training-frame target. Metrics: R@1, R@10, ±1 s (the top candidate within 30 frames) and
within-shot identification (top-1 among the candidates of the true frame's shot). Per method:
optimizer steps taken, stop reason and CPU seconds.

Usage::

    python benchmarks/bench_encoder_generalisation.py --seed 11 --units 600 --frames 600 \\
        --methods ridge,knn,demo --regimes repeats,contiguous_middle,front_only \\
        --max-steps 600 --val-every 50 --patience 6

``--methods`` takes ``ridge``, ``knn`` and encoder variants named in ``VARIANTS`` (or
``name:key=value;key=value`` to define one on the fly, values parsed as JSON; ``dina=true``
fits a NeurratorDINA and ranks candidates in its joint space; ``ensemble=[-1,0]`` averages the
predictions of windows shifted by those bins — the guard is widened to cover them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]

#: Encoder variants (EncoderConfig overrides on top of the demo preset).
VARIANTS: dict[str, dict] = {
    "demo": {},
    "ensemble": {"ensemble": [-1, 0]},
    "mixup": {"mixup": 0.4},
    "whitened": {"loss_space": "whitened"},
    "rank256": {"basis_rank": 256},
    "dina": {"dina": True},
    "dina-aux": {"contrastive_weight": 0.5},
    "regularised": {"dropout": 0.4, "weight_decay": 0.05, "unit_dropout": 0.3},
    "rf32": {"rf_units": 32},
    "rf64": {"rf_units": 64},
    "layers1": {"temporal_layers": 1},
    "d96": {"d_model": 96, "ff_dim": 192},
    "demo-frame": {"sampling": "frame"},
    "paper-small": {"preset": "paper", "d_model": 128, "n_heads": 4, "ff_dim": 256, "conv_channels": 64,
                    "unit_bottleneck": 128, "lr": 1e-3, "validation": "split", "lr_schedule": "step"},
}


# ---- data -----------------------------------------------------------------------------------


def build_data(seed: int, n_units: int, repeats: int, progress: bool):
    """(dataset, targets, shot_of_frame) of a simulated session; cached in runs/."""
    from neurrator import api
    from neurrator.data.stimulus import demo_definition
    from neurrator.preprocess.io import load_dataset
    from neurrator.runio import read_targets

    name = f"bench-generalisation-s{seed}-u{n_units}-r{repeats}"
    folder = ROOT / "runs" / name
    config = {
        "name": name, "seed": seed, "cache_dir": str(ROOT / ".neurrator-cache"),
        "data": {"simulation": {"n_units": n_units, "n_sessions": 1, "genotypes": ["Pvalb"],
                                "movie_repeats": repeats, "scene_repeats": 0, "seed": seed}},
        "preprocess": {"split": "repeats"},
    }
    if not (folder / "embed" / "targets.json").is_file():
        api.run_pipeline(config, folder, stages=["simulate", "ingest", "embed"])
    dataset = load_dataset(folder / "ingest" / "dataset")
    targets = read_targets(api.RunDir(folder))
    lengths = [int(n) for _, n in demo_definition()["movies"]["natural_movie_one"]["shots"]]
    shots = np.repeat(np.arange(len(lengths)), lengths)
    return dataset, targets, shots


def rezscore(dataset, train_pairs: np.ndarray):
    """The dataset z-scored again with the bins of ``train_pairs``' repeats and frames only."""
    from neurrator.preprocess.types import ZScoreStats

    raw = dataset.responses * dataset.zscore.std + dataset.zscore.mean  # undo (padding becomes the mean)
    bpf, pad = dataset.bins_per_frame, dataset.pad
    frames = np.unique(train_pairs[:, 1])
    bins = (frames[:, None] * bpf + np.arange(bpf)[None]).ravel() + pad
    repeats = np.unique(train_pairs[:, 0])
    sample = raw[repeats][:, bins].reshape(-1, dataset.n_units)
    mean, std = sample.mean(0), sample.std(0)
    std = np.where(std > 0, std, 1.0).astype(np.float32)
    responses = ((raw - mean) / std).astype(np.float32)
    responses[:, :pad] = 0
    responses[:, -pad:] = 0
    return replace(dataset, responses=responses, zscore=ZScoreStats(mean.astype(np.float32), std))


def guard_frames(window: int, bpf: int, train_shift: tuple[int, int], test_shift: tuple[int, int]) -> int:
    """Largest |f − g| in frames at which a training window of frame f can share a bin with a
    test window of frame g on the same repeat (shift ranges in bins, inclusive).

    Windows of f and g cover bins starting bpf·f + c + s and bpf·g + c + t; they overlap iff
    |bpf·(f − g) + s − t| ≤ window − 1.
    """
    low, high = train_shift[0] - test_shift[1], train_shift[1] - test_shift[0]
    leaky = lambda d: bpf * d + low <= window - 1 if d > 0 else bpf * d + high >= -(window - 1)
    return max(abs(d) for d in range(-100, 101) if d == 0 or leaky(d))


def make_regime(name: str, base_split, n_frames: int, guard: int, seed: int):
    from neurrator.preprocess.splits import make_split
    from neurrator.preprocess.types import Split

    n_repeats = int(max(base_split.train[:, 0].max(), base_split.val[:, 0].max(), base_split.test[:, 0].max()) + 1)
    keep = lambda pairs: pairs[pairs[:, 1] < n_frames]
    if name == "repeats":
        return Split("repeats", keep(base_split.train), keep(base_split.val), keep(base_split.test), base_split.seed,
                     base_split.description)
    split = make_split(name, n_repeats, n_frames, seed)
    test_frames = np.unique(split.test[:, 1])
    dist = np.abs(np.arange(n_frames)[:, None] - test_frames[None]).min(axis=1)
    allowed = np.flatnonzero(dist > guard)
    purge = lambda pairs: pairs[np.isin(pairs[:, 1], allowed)]
    return Split(name, purge(split.train), purge(split.val), split.test, seed,
                 split.description + f"; frames within {guard} of a test frame purged")


# ---- readout ----------------------------------------------------------------------------------


@dataclass
class Scores:
    r1: float
    r10: float
    within_1s: float
    within_shot: float
    chance_r1: float
    chance_r10: float
    chance_1s: float
    chance_shot: float


def centred_unit(patches: np.ndarray, mean: np.ndarray) -> np.ndarray:
    flat = (np.asarray(patches, dtype=np.float32) - mean).reshape(len(patches), -1)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def identify(pred: np.ndarray, true_frames: np.ndarray, candidates: np.ndarray, targets, mean: np.ndarray,
             shots: np.ndarray | None, tolerance: int, sims: np.ndarray | None = None) -> Scores:
    """Scores of predicted patches ``pred`` (centred full-patch cosine), or of a method's own
    similarity matrix ``sims`` (n, n_candidates) when given (DINA's joint space)."""
    if sims is None:
        cand = centred_unit(np.asarray(targets.patches[candidates]), mean)
        sims = centred_unit(pred, mean) @ cand.T  # (n, n_candidates)
    pos = np.searchsorted(candidates, true_frames)
    true_sim = sims[np.arange(len(true_frames)), pos]
    rank = (sims > true_sim[:, None]).sum(axis=1)
    top = candidates[sims.argmax(axis=1)]
    near = np.abs(candidates[None] - true_frames[:, None]) <= tolerance
    r = Scores(float((rank < 1).mean()), float((rank < 10).mean()), float((np.abs(top - true_frames) <= tolerance).mean()),
               np.nan, 1 / len(candidates), min(10 / len(candidates), 1.0), float(near.mean()), np.nan)
    if shots is not None:
        same = shots[candidates][None] == shots[true_frames][:, None]
        masked = np.where(same, sims, -np.inf)
        r.within_shot = float((candidates[masked.argmax(axis=1)] == true_frames).mean())
        r.chance_shot = float((1 / same.sum(axis=1)).mean())
    return r


# ---- methods ------------------------------------------------------------------------------------


def fit_ridge(dataset, targets, split, seed):
    """Ridge from 2-chunk window features to 128 target PCs; alpha chosen on validation."""
    from neurrator.core.linalg import fit_pca_basis
    from neurrator.evaluate.baselines import RidgePatches, window_features

    basis = fit_pca_basis(targets.patches, split.train_frames, 128)
    xtr, xva = window_features(dataset, split.train), window_features(dataset, split.val)
    ytr = basis.transform(targets.patches, split.train[:, 1])
    best = None
    for alpha in (1e1, 1e2, 1e3, 1e4, 1e5):
        model = RidgePatches(alpha).fit(xtr, ytr)
        val = mean_patch_cos(basis.inverse_transform(model.predict(xva)), targets, split.val)
        if best is None or val > best[0]:
            best = (val, alpha, model)
    val, alpha, model = best
    predict = lambda pairs: basis.inverse_transform(model.predict(window_features(dataset, pairs)))
    return predict, {"alpha": alpha, "val": val, "steps": 0, "stopped": "closed_form"}


def fit_local_ridge(dataset, targets, split, seed, k_units: int = 32, alpha: float | None = None):
    """Receptive-field-aware linear readout (a hypothesis test, not a Neurrator variant): each
    unit's retinotopy is estimated on the training frames (|correlation| of its frame-mean
    response with each patch's feature energy), and each patch's 64 features are regressed (ridge)
    on the 2-chunk features of its ``k_units`` best-seeing units only. Alpha chosen on validation."""
    from neurrator.evaluate.baselines import window_features

    frames = np.unique(split.train[:, 1])
    y_all = np.asarray(targets.patches, dtype=np.float32)
    mean = y_all[frames].mean(axis=0)  # (P, D)
    xtr, xva = window_features(dataset, split.train), window_features(dataset, split.val)
    n_units = dataset.n_units
    # Frame-mean response per unit (mean of both chunks) and per-patch energy of the centred target.
    resp = np.stack([xtr[split.train[:, 1] == f].mean(0) for f in frames])  # (F, 2U)
    resp = resp.reshape(len(frames), 2, n_units).mean(1)
    energy = np.linalg.norm(y_all[frames] - mean, axis=2)  # (F, P)
    zr = (resp - resp.mean(0)) / (resp.std(0) + 1e-8)
    ze = (energy - energy.mean(0)) / (energy.std(0) + 1e-8)
    rf = np.abs(zr.T @ ze) / len(frames)  # (U, P)
    top = np.argsort(-rf, axis=0)[:k_units].T  # (P, k) units per patch
    cols = lambda units: np.concatenate([units, units + n_units])
    ytr = y_all[split.train[:, 1]] - mean  # (N, P, D)
    yva = y_all[split.val[:, 1]] - mean
    best = None
    for a in ([alpha] if alpha else (1e1, 1e2, 1e3, 1e4)):
        weights, val = [], 0.0
        pred_va = np.empty_like(yva)
        for p in range(len(top)):
            c = cols(top[p])
            x = xtr[:, c]
            w = np.linalg.solve(x.T @ x + a * np.eye(len(c)), x.T @ ytr[:, p])
            weights.append(w)
            pred_va[:, p] = xva[:, c] @ w
        val = mean_patch_cos(pred_va + mean, targets, split.val)
        if best is None or val > best[0]:
            best = (val, a, weights)
    val, a, weights = best

    def predict(pairs):
        x = window_features(dataset, pairs)
        out = np.empty((len(pairs), *mean.shape), dtype=np.float32)
        for p in range(len(top)):
            out[:, p] = x[:, cols(top[p])] @ weights[p]
        return out + mean

    return predict, {"alpha": a, "val": round(val, 4), "steps": 0, "stopped": "closed_form", "k_units": k_units}


def fit_knn(dataset, targets, split, seed, k: int = 10):
    """PCA (128) of the window features, cosine kNN over training windows → mean neighbour target."""
    from sklearn.decomposition import PCA

    from neurrator.evaluate.baselines import window_features

    xtr = window_features(dataset, split.train)
    pca = PCA(128, random_state=seed).fit(xtr)
    ztr = pca.transform(xtr)
    ztr /= np.linalg.norm(ztr, axis=1, keepdims=True) + 1e-12
    frames = split.train[:, 1]

    def predict(pairs):
        z = pca.transform(window_features(dataset, pairs))
        z /= np.linalg.norm(z, axis=1, keepdims=True) + 1e-12
        nn = np.argsort(-(z @ ztr.T), axis=1)[:, :k]
        out = np.empty((len(pairs), *targets.patches.shape[1:]), dtype=np.float32)
        for i, row in enumerate(nn):
            out[i] = np.asarray(targets.patches[frames[row]], dtype=np.float32).mean(axis=0)
        return out

    return predict, {"k": k, "steps": 0, "stopped": "closed_form"}


def fit_encoder(params: dict, dataset, targets, split, seed, budget: dict):
    from neurrator.encoder import Neurrator

    settings = {"progress": False, **budget, **params}
    ensemble = settings.pop("ensemble", None)
    est = Neurrator(seed=seed, **settings).fit(dataset, targets, split)
    m = est.meta_.metrics

    def predict(pairs):
        if not ensemble:
            return est.predict(dataset, pairs).numpy()
        return est.predict(dataset, pairs, shifts=tuple(ensemble)).numpy()

    return predict, {"steps": m["steps"], "stopped": m["stopped"], "val": round(m["val_cosine"], 4),
                     "params": m["n_parameters"]}


def fit_dina(params: dict, dataset, targets, split, seed, budget: dict):
    from neurrator.encoder import NeurratorDINA

    settings = {"progress": False, **budget, **params}
    ensemble = tuple(settings.pop("ensemble", None) or (0,))
    est = NeurratorDINA(seed=seed, **settings).fit(dataset, targets, split)
    m = est.meta_.metrics

    def similarity(pairs, candidates):
        return est.similarity(dataset, pairs, targets, candidates, shifts=ensemble).numpy()

    return similarity, {"steps": m["steps"], "stopped": m["stopped"], "val": round(m["val_cosine"], 4),
                        "params": m["n_parameters"], "temperature": round(m["temperature"], 4)}


def mean_patch_cos(pred: np.ndarray, targets, pairs: np.ndarray) -> float:
    true = np.asarray(targets.patches[pairs[:, 1]], dtype=np.float32)
    num = (pred * true).sum(-1)
    den = np.linalg.norm(pred, axis=-1) * np.linalg.norm(true, axis=-1) + 1e-8
    return float((num / den).mean())


def parse_method(spec: str) -> tuple[str, dict | None]:
    if spec in ("ridge", "knn", "local-ridge"):
        return spec, None
    if ":" in spec:
        name, body = spec.split(":", 1)
        params = {}
        for item in filter(None, body.split(";")):
            key, value = item.split("=", 1)
            params[key] = json.loads(value)
        return name, params
    return spec, VARIANTS[spec]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=11, help="simulator seed (the demo uses 0)")
    parser.add_argument("--units", type=int, default=600, help="units per simulated session before QC")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--frames", type=int, default=600, help="first frames of the movie used")
    parser.add_argument("--methods", default="ridge,knn,demo")
    parser.add_argument("--regimes", default="repeats,contiguous_middle,front_only")
    parser.add_argument("--max-steps", type=int, default=600)
    parser.add_argument("--val-every", type=int, default=50)
    parser.add_argument("--patience", type=int, default=6)
    parser.add_argument("--fit-seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="append results as JSON lines here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from neurrator.encoder.config import EncoderConfig

    dataset, targets, shots = build_data(args.seed, args.units, args.repeats, True)
    from neurrator.preprocess.io import load_split

    base = load_split(ROOT / "runs" / f"bench-generalisation-s{args.seed}-u{args.units}-r{args.repeats}" / "ingest" / "split.json")
    budget = {"max_steps": args.max_steps, "val_every": args.val_every, "patience": args.patience, "max_epochs": 1000}
    shift = EncoderConfig().max_shift_bins(dataset.bins_per_frame)
    specs = [parse_method(spec) for spec in args.methods.split(",")]
    test_shifts = [0] + [t for _, p in specs if p for t in p.get("ensemble", [])]
    guard = guard_frames(dataset.window, dataset.bins_per_frame, shift, (min(test_shifts), max(test_shifts)))
    tolerance = 30
    load = os.getloadavg()
    print(f"data: simulated session seed {args.seed} (stand-in), {dataset.n_units} units after QC, "
          f"{dataset.n_repeats} repeats, first {args.frames} frames; targets {targets.info.space_id} "
          f"{'(stand-in)' if targets.info.is_stand_in else ''}; budget ≤ {args.max_steps} steps of 64, validation every "
          f"{args.val_every}, patience {args.patience}; guard {guard} frames (training shifts {shift} bins, test shifts "
          f"{min(test_shifts)}..{max(test_shifts)})")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 cores)")
    header = f"{'regime':18s} {'method':28s} {'R@1':>6s} {'R@10':>6s} {'±1s':>6s} {'shot':>6s}   {'chance R@10/±1s/shot':>22s}  {'steps':>5s} {'stop':>14s} {'cpu s':>6s}"
    print(header)
    for regime in args.regimes.split(","):
        split = make_regime(regime, base, args.frames, guard, args.fit_seed)
        data = rezscore(dataset, split.train)
        train_frames = np.unique(split.train[:, 1])
        mean = np.asarray(targets.patches[train_frames], dtype=np.float32).mean(axis=0)
        test_frames = np.unique(split.test[:, 1])
        candidates = np.arange(args.frames) if regime == "repeats" else test_frames
        for name, params in specs:
            params = None if params is None else dict(params)
            cpu0 = time.process_time()
            if name == "ridge":
                predict, info = fit_ridge(data, targets, split, args.fit_seed)
            elif name == "local-ridge":
                predict, info = fit_local_ridge(data, targets, split, args.fit_seed)
            elif name == "knn":
                if regime != "repeats":
                    print(f"{regime:18s} {name:28s} {'n/a (answers only training frames)':>40s}")
                    continue
                predict, info = fit_knn(data, targets, split, args.fit_seed)
            elif params.pop("dina", False):
                similarity, info = fit_dina(params, data, targets, split, args.fit_seed, budget)
            else:
                predict, info = fit_encoder(params, data, targets, split, args.fit_seed, budget)
            if "temperature" in info:
                s = identify(None, split.test[:, 1], candidates, targets, mean, shots, tolerance,
                             sims=similarity(split.test, candidates))
            else:
                pred = np.concatenate([predict(split.test[i : i + 512]) for i in range(0, len(split.test), 512)])
                s = identify(pred, split.test[:, 1], candidates, targets, mean, shots, tolerance)
            cpu = time.process_time() - cpu0
            print(f"{regime:18s} {name:28s} {s.r1:6.3f} {s.r10:6.3f} {s.within_1s:6.3f} {s.within_shot:6.3f}   "
                  f"{s.chance_r10:6.3f}/{s.chance_1s:6.3f}/{s.chance_shot:6.3f}  {info.get('steps', 0):5d} "
                  f"{info.get('stopped', ''):>14s} {cpu:6.0f}", flush=True)
            if args.json:
                with args.json.open("a") as fh:
                    fh.write(json.dumps({"seed": args.seed, "regime": regime, "method": name, "params": params,
                                         "scores": s.__dict__, "info": info, "cpu_s": cpu,
                                         "load": os.getloadavg()[0]}) + "\n")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = os.getloadavg()
    print(f"load average at end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; peak RSS {rss:.0f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()
