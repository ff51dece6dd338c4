"""Multi-session encoder: throughput and memory vs sessions, shared vs per-session models, and
adaptation of a new session vs training from scratch at equal time.

All data are simulated mice (``neurrator simulate``, different units per mouse; a stand-in for
Allen recordings) seeing the embedded demo movie (900 frames, 30 s per repeat), ingested one
session at a time into per-session caches, with oriented-energy patch targets (a stand-in for
CLIP). The readout is the project's identification readout on held-out repeats
(:func:`neurrator.evaluate.embedding.identification_summary`: R@1 / R@10 among all 900 frames, frame
identification within 1 s, median rank; chance levels computed).

    python benchmarks/bench_multisession.py all --run runs/bench-ms       # prepare + the three parts
    python benchmarks/bench_multisession.py prepare --run runs/bench-ms   # simulate 11 mice, ingest, embed
    python benchmarks/bench_multisession.py throughput --run runs/bench-ms [--steps 40]
    python benchmarks/bench_multisession.py compare --run runs/bench-ms [--steps 300]
    python benchmarks/bench_multisession.py adapt --run runs/bench-ms [--adapt-steps 300]

Parts:

- ``throughput``: training windows/s and peak RSS (``VmHWM``, a fresh child process each) for
  1, 3 and 10 sessions, against today's pseudo-mouse (sessions stacked into one array and one
  single-session encoder) on the same sessions and steps.
- ``compare``: one multi-session model on mice 0-4 vs one model per mouse, same architecture and
  loop, equal total optimizer steps (5 × ``--steps`` for the shared model, ``--steps`` each
  per mouse), scored on each mouse's held-out test repeats.
- ``adapt``: mouse 10 (never seen) gets 1, 3 or 10 minutes of training repeats (2, 6, 20). The
  shared model adapts only its unit and session embeddings; a model trained from scratch on the
  same data gets the adaptation's wall time. Both are scored on the same 2 test repeats.

Every part prints the machine load (``os.getloadavg``): timings under load are provisional.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

N_SESSIONS = 11  # 10 for training, 1 held out for adaptation
ENCODER = {"progress": False}


def load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min) {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM (Linux only)")


def cli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "neurrator.cli", *args], check=True)


def prepare(run: Path, units: int) -> None:
    if (run / "embed" / "targets.json").is_file():
        print(f"{run}: already prepared")
        return
    common = ["--run", str(run)]
    cli("simulate", *common, "--set", f"data.simulation.n_units={units}", "--set", f"data.simulation.n_sessions={N_SESSIONS}",
        "--set", "data.simulation.scene_repeats=0", "--set", "data.simulation.movie_repeats=24",
        "--set", "data.simulation.genotypes=[Pvalb,Sst,Vip,wt]")
    cli("ingest", *common, "--set", "data.pseudo_mouse=false")
    cli("embed", *common)


def sessions_of(run: Path):
    from neurrator.encoder.multisession import SessionData
    from neurrator.preprocess.session_cache import read_index

    entries = read_index(run / "ingest" / "sessions.json")
    return [SessionData(e.session_id, e.dataset(), e.split()) for e in entries]


def targets_of(run: Path):
    from neurrator import runio
    from neurrator.rundir import RunDir

    return runio.read_targets(RunDir.open(run))


def readout(predicted, pairs, frame_targets) -> dict:
    """The benchmark's headline readout: full patch tensors centred on the mean target."""
    from neurrator.evaluate.embedding import identification_summary

    m = identification_summary(predicted.numpy(), pairs[:, 1], frame_targets, mean_target=frame_targets.mean(0),
                               frame_rate=30.0)
    return {"r1": m["r1"], "r10": m["r10"], "frame_id_within_tol": m["within_tol"], "median_rank": m["median_rank"],
            "r1_chance": m["r1_chance"], "r10_chance": m["r10_chance"],
            "frame_id_within_tol_chance": m["within_tol_chance"]}


# ---- throughput -------------------------------------------------------------------------------


def child_throughput(run: Path, n: int, steps: int, mode: str) -> None:
    import torch

    torch.set_num_threads(1)
    base = peak_rss_mb()
    sessions = sessions_of(run)[:n]
    targets = targets_of(run)
    units = sum(s.dataset.n_units for s in sessions)
    t0 = time.perf_counter()
    if mode == "multi":
        from neurrator.encoder.multisession import MultiSessionNeurrator

        est = MultiSessionNeurrator(seed=0, max_steps=steps, val_every=steps, patience=1, pool_fraction=0.25,
                                    encoder=ENCODER).fit(sessions, targets)
        rate = est.history_[-1]["windows_per_s"]
    else:  # today's pseudo-mouse: the sessions stacked into one array, one single-session encoder
        from neurrator.encoder.multisession import MultiSessionNeurrator, SessionData

        stacked = np.concatenate([np.asarray(s.dataset.responses) for s in sessions], axis=2)
        ds0 = sessions[0].dataset
        import pandas as pd

        from neurrator.preprocess.types import ZScoreStats

        pooled = replace(ds0, responses=stacked, units=pd.concat([s.dataset.units.assign(session_id="pooled")
                                                                 for s in sessions]),
                         zscore=ZScoreStats(np.concatenate([s.dataset.zscore.mean for s in sessions]),
                                            np.concatenate([s.dataset.zscore.std for s in sessions])))
        est = MultiSessionNeurrator(seed=0, max_steps=steps, val_every=steps, patience=1,
                                    encoder=ENCODER).fit([SessionData("pooled", pooled, sessions[0].split)], targets)
        rate = est.history_[-1]["windows_per_s"]
    status = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text().splitlines()
              if line.startswith(("RssAnon", "RssFile"))}
    print(json.dumps({"n": n, "mode": mode, "units": units, "windows_per_s": rate, "peak_mb": peak_rss_mb(),
                      "import_mb": base, "anon_mb": status.get("RssAnon"), "file_mb": status.get("RssFile"),
                      "seconds": time.perf_counter() - t0}))


def throughput(run: Path, steps: int) -> None:
    rows = []
    for n in (1, 3, 10):
        for mode in ("multi", "pseudo-mouse"):
            out = subprocess.run([sys.executable, __file__, "child", "--run", str(run), "--n", str(n),
                                  "--steps", str(steps), "--mode", mode], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\n== training throughput and peak memory vs sessions ({steps} steps of 64 windows, 1 thread; "
          f"{load_note()})")
    print(f"{'sessions':>8} {'mode':<13}{'units':>7}{'windows/s':>11}{'peak RSS MB':>13}{'anon MB':>9}"
          f"{'file MB':>9}{'imports MB':>12}")
    for r in rows:
        print(f"{r['n']:>8} {r['mode']:<13}{r['units']:>7}{r['windows_per_s']:>11.0f}{r['peak_mb']:>13.0f}"
              f"{r['anon_mb']:>9.0f}{r['file_mb']:>9.0f}{r['import_mb']:>12.0f}")
    print("multi: per-session memory-mapped caches, each batch reads only its windows' sessions; pseudo-mouse: "
          "all sessions stacked into one in-memory array (units × repeats × bins), as ingest pools today.")


# ---- shared vs per-session ------------------------------------------------------------------------


def compare(run: Path, steps: int, out: Path) -> None:
    from neurrator.encoder.multisession import MultiSessionNeurrator

    sessions = sessions_of(run)[:5]
    targets = targets_of(run)
    frame_targets = np.asarray(targets.patches, dtype=np.float32)
    params = {"seed": 0, "val_every": 50, "patience": 6, "encoder": ENCODER}
    t0 = time.perf_counter()
    shared = MultiSessionNeurrator(max_steps=5 * steps, **params).fit(sessions, targets)
    shared_s = time.perf_counter() - t0
    shared.save(out / "shared")
    rows = []
    for s in sessions:
        t0 = time.perf_counter()
        own = MultiSessionNeurrator(max_steps=steps, **params).fit([s], targets)
        own_s = time.perf_counter() - t0
        test = s.split.test
        a = readout(shared.predict(s.dataset, test), test, frame_targets)
        b = readout(own.predict(s.dataset, test), test, frame_targets)
        rows.append((s.key, s.dataset.n_units, a, b, own_s, own.fit_result_.steps))
    print(f"\n== one shared model (5 mice, ≤ {5 * steps} steps, {shared.fit_result_.steps} taken, {shared_s:.0f} s) vs "
          f"one model per mouse (≤ {steps} steps each), held-out test repeats; equal optimizer steps, not equal wall "
          f"time (the shared model validates all 5 mice every 50 steps); {load_note()}")
    print(f"{'mouse':<12}{'units':>6}  {'R@1 shared':>10}{'per-mouse':>10}  {'R@10 shared':>11}{'per-mouse':>10}  "
          f"{'≤1 s shared':>11}{'per-mouse':>10}  {'med.rank sh':>11}{'per-mouse':>10}")
    for key, units, a, b, _, _ in rows:
        print(f"{key:<12}{units:>6}  {a['r1']:>10.3f}{b['r1']:>10.3f}  {a['r10']:>11.3f}{b['r10']:>10.3f}  "
              f"{a['frame_id_within_tol']:>11.3f}{b['frame_id_within_tol']:>10.3f}  {a['median_rank']:>11.0f}"
              f"{b['median_rank']:>10.0f}")
    mean = lambda k, i: float(np.mean([r[i][k] for r in rows]))
    print(f"{'mean':<18}  {mean('r1', 2):>10.3f}{mean('r1', 3):>10.3f}  {mean('r10', 2):>11.3f}{mean('r10', 3):>10.3f}  "
          f"{mean('frame_id_within_tol', 2):>11.3f}{mean('frame_id_within_tol', 3):>10.3f}  "
          f"{mean('median_rank', 2):>11.0f}{mean('median_rank', 3):>10.0f}")
    c = rows[0][2]
    print(f"chance: R@1 {c['r1_chance']:.4f}, R@10 {c['r10_chance']:.4f}, within 1 s {c['frame_id_within_tol_chance']:.3f}, "
          f"median rank {(900 + 1) / 2:.0f}; per-mouse fits took {sum(r[4] for r in rows):.0f} s in total, "
          f"steps taken {[r[5] for r in rows]}")


# ---- adaptation ---------------------------------------------------------------------------------------


def adapt(run: Path, adapt_steps: int, out: Path) -> None:
    from neurrator.encoder.multisession import MultiSessionNeurrator, SessionData
    from neurrator.preprocess.dataset import rezscore

    if not (out / "shared" / "checkpoint.json").is_file():
        raise SystemExit("run the 'compare' part first: adaptation starts from its shared model")
    new = sessions_of(run)[N_SESSIONS - 1]
    targets = targets_of(run)
    frame_targets = np.asarray(targets.patches, dtype=np.float32)
    train_repeats = np.unique(new.split.train[:, 0])
    rows = []
    for minutes in (1, 3, 10):
        k = min(2 * minutes, len(train_repeats))  # 30 s per repeat
        split = replace(new.split, train=new.split.train[np.isin(new.split.train[:, 0], train_repeats[:k])])
        data = SessionData(new.key, rezscore(new.dataset, split), split)  # z-scored from those repeats only
        model = MultiSessionNeurrator.load(out / "shared")
        model.set_params(adapt_steps=adapt_steps, adapt_val_every=25, adapt_patience=4)
        t0 = time.perf_counter()
        result = model.adapt(data, targets)
        adapt_s = time.perf_counter() - t0
        scratch = MultiSessionNeurrator(seed=0, max_steps=100_000, val_every=10, patience=10_000,
                                        max_minutes=adapt_s / 60, encoder=ENCODER)
        t0 = time.perf_counter()
        scratch.fit([data], targets)
        scratch_s = time.perf_counter() - t0
        test = split.test
        rows.append((minutes, k, result, adapt_s, readout(model.predict(data.dataset, test), test, frame_targets),
                     scratch.fit_result_.steps, scratch_s, readout(scratch.predict(data.dataset, test), test, frame_targets)))
    print(f"\n== new mouse {new.key} ({new.dataset.n_units} units): adapt embeddings only vs from scratch at equal time; "
          f"{load_note()}")
    print(f"{'minutes':>7}{'repeats':>8}  {'adapt steps':>11}{'s':>6}{'params':>8}  {'R@1':>6}{'R@10':>6}{'≤1 s':>6}"
          f"{'rank':>6}  |  {'scratch steps':>13}{'s':>6}  {'R@1':>6}{'R@10':>6}{'≤1 s':>6}{'rank':>6}")
    for minutes, k, res, a_s, a, s_steps, s_s, b in rows:
        print(f"{minutes:>7}{k:>8}  {res.steps:>11}{a_s:>6.0f}{res.trainable_parameters:>8}  {a['r1']:>6.3f}"
              f"{a['r10']:>6.3f}{a['frame_id_within_tol']:>6.3f}{a['median_rank']:>6.0f}  |  {s_steps:>13}{s_s:>6.0f}  "
              f"{b['r1']:>6.3f}{b['r10']:>6.3f}{b['frame_id_within_tol']:>6.3f}{b['median_rank']:>6.0f}")
    c = rows[0][4]
    print(f"chance: R@1 {c['r1_chance']:.4f}, R@10 {c['r10_chance']:.4f}, within 1 s {c['frame_id_within_tol_chance']:.3f}; "
          "adapt stops on validation patience or its step cap; scratch gets the adaptation's wall time (checked "
          "every 10 steps), same architecture and loop, all parameters trainable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["all", "prepare", "throughput", "compare", "adapt", "child"])
    parser.add_argument("--run", type=Path, default=Path("runs/bench-ms"))
    parser.add_argument("--units", type=int, default=150, help="units per simulated mouse before QC")
    parser.add_argument("--steps", type=int, default=None, help="steps (throughput: 40; compare: 300 per mouse)")
    parser.add_argument("--adapt-steps", type=int, default=300)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    args = parser.parse_args()
    out = args.run / "bench_multisession"
    out.mkdir(parents=True, exist_ok=True) if args.run.exists() else None
    if args.part == "child":
        return child_throughput(args.run, args.n, args.steps, args.mode)
    if args.part in ("all", "prepare"):
        prepare(args.run, args.units)
        out.mkdir(parents=True, exist_ok=True)
    print(f"data: {N_SESSIONS} simulated mice (stand-in), {args.units} units each before QC, demo movie, "
          f"oriented-energy targets (stand-in for CLIP); {load_note()}")
    if args.part in ("all", "throughput"):
        throughput(args.run, args.steps or 40)
    if args.part in ("all", "compare"):
        compare(args.run, args.steps or 300, out)
    if args.part in ("all", "adapt"):
        adapt(args.run, args.adapt_steps, out)


if __name__ == "__main__":
    main()
