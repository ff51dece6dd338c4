"""Peak memory of ingest + preprocess on a 2,000-unit session, with and without waveform_mean.

Writes one simulated 2,000-unit session (20 natural_movie_one repeats) twice: plain, and with
a (2000, 82, 384) float32 ``waveform_mean`` column as large as in real Allen files (252 MB).
Each file is then read (``read_session``) and binned + z-scored (``build_dataset``) in a fresh
child process, whose peak resident memory (``VmHWM`` of ``/proc/self/status``, which, unlike
``ru_maxrss``, starts afresh at ``exec``) is reported. The reader never touches
``waveform_mean``, so the two peaks should match within noise, far below the waveform size.

    python benchmarks/bench_ingest_memory.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    """High-water mark of this process's resident memory (Linux ``VmHWM``), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child(path: str) -> None:
    """Run ingest + preprocess on ``path`` and print peak RSS (MB) and the dataset shape as JSON."""
    from neurrator.data.allen import read_session
    from neurrator.preprocess.dataset import build_dataset

    baseline = peak_rss_mb()
    t0 = time.perf_counter()
    session = read_session(path)
    ds = build_dataset([session], "natural_movie_one", "repeats", n_frames=900)
    peak = peak_rss_mb()
    print(json.dumps({"peak_mb": peak, "import_mb": baseline, "seconds": time.perf_counter() - t0,
                      "units": ds.n_units, "responses_mb": ds.responses.nbytes / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 units instead of 2,000")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the two NWB files")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)

    from neurrator.data.nwb_write import write_allen_nwb
    from neurrator.data.simulate import simulate_session
    from neurrator.data.stimulus import load_stimulus

    n_units = 500 if args.quick else 2000
    work = args.workdir or Path(tempfile.mkdtemp(prefix="neurrator-bench-"))
    stimulus = load_stimulus("natural_movie_one", cache_dir=Path(".neurrator-cache"))
    sim = simulate_session({"natural_movie_one": stimulus}, n_units=n_units, genotype="Pvalb", movie_repeats=20,
                           scene_repeats=0, seed=3)
    rows = []
    for label, waveforms in (("without waveform_mean", False), ("with waveform_mean", True)):
        path = write_allen_nwb(sim, work / f"session_{'wf' if waveforms else 'plain'}.nwb", waveform_mean=waveforms)
        out = subprocess.run([sys.executable, __file__, "--child", str(path)], capture_output=True, text=True, check=True)
        rows.append((label, path.stat().st_size / 2**20, json.loads(out.stdout.strip().splitlines()[-1])))
    wf_mb = n_units * 82 * 384 * 4 / 2**20
    print(f"session: {n_units} units before QC, 20 natural_movie_one repeats; waveform_mean = {wf_mb:.0f} MB")
    print(f"{'file':<24}{'file MB':>9}{'units':>7}{'responses MB':>14}{'peak RSS MB':>13}{'after imports':>15}{'s':>7}")
    for label, size, r in rows:
        print(f"{label:<24}{size:>9.0f}{r['units']:>7}{r['responses_mb']:>14.0f}{r['peak_mb']:>13.0f}"
              f"{r['import_mb']:>15.0f}{r['seconds']:>7.1f}")
    delta = rows[1][2]["peak_mb"] - rows[0][2]["peak_mb"]
    print(f"peak difference with/without waveform_mean: {delta:+.0f} MB (waveform_mean itself: {wf_mb:.0f} MB)")


if __name__ == "__main__":
    main()
