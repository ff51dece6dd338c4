"""Ingest at scale: peak memory of a manifest ingest (one session at a time, pseudo-mouse streamed
into a memory map) against reading every session into memory and pooling them (``build_dataset``
on all sessions, what ingest did before), for 1, 3 and 10 sessions; and a rerun from the cache.

    python benchmarks/bench_ingest_scale.py --sessions-dir runs/bench-ms/simulate [--counts 1,3,10]

Uses the simulated NWB files of ``benchmarks/bench_multisession.py prepare`` (11 mice, 150 units
each before QC, 24 natural_movie_one repeats; a stand-in for Allen recordings). Each measurement
runs in a fresh child process that first loads the stimulus (both modes hold it); reported are
the peak resident memory ``VmHWM`` (file-backed pages of memory maps included) and the peak
anonymous memory ``RssAnon`` (sampled every 20 ms), on Linux.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM (Linux only)")


class AnonSampler:
    """Peak anonymous resident memory (``RssAnon``, sampled every 20 ms in a thread): unlike
    ``VmHWM`` it leaves out file-backed pages (memory-mapped caches and outputs, libraries), which
    the kernel can drop under pressure."""

    def __init__(self):
        import threading

        self.peak, self.stop = 0.0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.wait(0.02):
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    self.peak = max(self.peak, int(line.split()[1]) / 1024)

    def close(self) -> float:
        self.stop.set()
        self.thread.join()
        return self.peak


def child(mode: str, files: list[str], work: str, cache: str) -> None:
    from neurrator.config import RunConfig
    from neurrator.data.stimulus import load_stimulus
    from neurrator.rundir import RunDir
    from neurrator.stages import run_stage

    load_stimulus("natural_movie_one", cache_dir=cache)  # both modes hold the stimulus (rendered by the parent)
    base = peak_rss_mb()
    sampler = AnonSampler()
    t0 = time.perf_counter()
    if mode == "in-memory":
        from neurrator.data.allen import read_session
        from neurrator.preprocess.dataset import build_dataset

        sessions = [read_session(f) for f in files]
        ds = build_dataset(sessions, "natural_movie_one", "repeats", n_frames=900)
        units, nbytes, note = ds.n_units, ds.responses.nbytes, ""
    else:
        manifest = Path(work) / "sessions.txt"
        manifest.write_text("\n".join(files) + "\n")
        config = RunConfig().with_overrides({"data.source": "nwb", "data.manifest": str(manifest),
                                             "data.allow_demo_stimulus": True, "cache_dir": cache})
        run = RunDir.create(Path(work) / "run", config)
        result = run_stage("ingest", run, config)
        note = next(line.strip() for line in result.summary.splitlines() if "ingest/sessions" in line)
        from neurrator.preprocess.io import load_dataset

        ds = load_dataset(run.stage_dir("ingest") / "dataset")
        units, nbytes = ds.n_units, ds.responses.nbytes
    anon = sampler.close()
    print(json.dumps({"peak_mb": peak_rss_mb(), "anon_mb": anon, "import_mb": base, "seconds": time.perf_counter() - t0,
                      "units": units, "responses_mb": nbytes / 2**20, "note": note}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions-dir", type=Path, default=Path("runs/bench-ms/simulate"))
    parser.add_argument("--counts", default="1,3,10")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, files, work, cache = args.child
        return child(mode, json.loads(files), work, cache)
    files = sorted(args.sessions_dir.glob("session_*.nwb"), key=lambda p: int(p.stem.split("_")[1]))
    if not files:
        raise SystemExit(f"no session_*.nwb in {args.sessions_dir}: run benchmarks/bench_multisession.py prepare")
    from neurrator.data.stimulus import load_stimulus

    cache = tempfile.mkdtemp(prefix="bench-ingest-cache-")
    load_stimulus("natural_movie_one", cache_dir=cache)  # rendered once, read by every child
    rows = []
    for n in (int(c) for c in args.counts.split(",")):
        chosen = json.dumps([str(f.resolve()) for f in files[:n]])
        work = tempfile.mkdtemp(prefix="bench-ingest-")
        for mode in ("in-memory", "manifest", "manifest"):  # the second manifest run reads the cache
            out = subprocess.run([sys.executable, __file__, "--child", mode, chosen, work, cache], capture_output=True,
                                 text=True, check=True)
            rows.append((n, mode, json.loads(out.stdout.strip().splitlines()[-1])))
    one, five, _ = os.getloadavg()
    print(f"simulated mice (stand-in), 150 units each before QC, 24 repeats × 900 frames; load {one:.2f} (1 min) "
          f"{five:.2f} (5 min) on {os.cpu_count()} CPUs")
    print(f"{'sessions':>8} {'ingest':<10}{'units':>7}{'responses MB':>14}{'peak RSS MB':>13}{'peak anon MB':>14}"
          f"{'before MB':>11}{'s':>7}  note")
    for n, mode, r in rows:
        print(f"{n:>8} {mode:<10}{r['units']:>7}{r['responses_mb']:>14.0f}{r['peak_mb']:>13.0f}{r['anon_mb']:>14.0f}"
              f"{r['import_mb']:>11.0f}{r['seconds']:>7.1f}  {r['note']}")
    print("in-memory: every session read, then pooled by build_dataset (the pooled array and all spike trains held); "
          "manifest: neurrator ingest with data.manifest (one session at a time, pooled array streamed into a "
          "memory map); its second row reruns ingest on the same run (every session from the cache).")


if __name__ == "__main__":
    main()
