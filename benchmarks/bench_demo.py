"""Wall time of ``neurrator demo`` per stage, against the issue-14 baseline and the 240 s target.

    python benchmarks/bench_demo.py                  # a fresh demo in a temporary folder
    python benchmarks/bench_demo.py --keep runs/x    # keep the run (and its cache) in runs/x
    python benchmarks/bench_demo.py --run runs/demo  # only read the timings of an existing run

"After install" means an empty cache: the demo renders its stimulus, computes its patch targets
and loads its language model from scratch, as on a fresh clone. The machine load (1-minute
average) is printed before and after: other processes on a shared machine slow every stage.
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

#: Issue 14's measurement of the demo after install on 2 cores (seconds; stages it listed).
BASELINE = {"simulate": 34, "train": 135, "narrate": 94, "benchmark": 107, "analyze": 61}
BASELINE_TOTAL = 454
TARGET_S = 240


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _table(manifest: dict, wall: float | None) -> None:
    stages = manifest.get("stages", {})
    print(f"{'stage':<10} {'seconds':>8} {'issue baseline':>15}")
    for name, record in stages.items():
        base = BASELINE.get(name)
        print(f"{name:<10} {record.get('seconds', float('nan')):>8.1f} {'' if base is None else base:>15}"
              f"{'' if record.get('status') == 'done' else '  (' + str(record.get('status')) + ')'}")
    total = sum(r.get("seconds", 0.0) for r in stages.values())
    print(f"{'sum':<10} {total:>8.1f} {BASELINE_TOTAL:>15}")
    if wall is not None:
        print(f"wall time of `neurrator demo` (incl. start-up): {wall:.1f} s; target <= {TARGET_S} s: "
              f"{'met' if wall <= TARGET_S else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="read the timings of this existing run instead of running the demo")
    parser.add_argument("--keep", type=Path, help="folder to keep the new run and its cache in")
    args = parser.parse_args()
    if args.run is not None:
        _table(json.loads((args.run / "manifest.json").read_text()), None)
        return
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        print(f"before: {_load()}")
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "neurrator.cli", "demo", "--name", "bench", "--run", str(root / "bench"),
                              "--set", f"cache_dir={root / 'cache'}"], cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        print(f"after:  {_load()}")
        if out.returncode != 0:
            sys.exit(f"demo failed:\n{out.stderr[-3000:]}")
        _table(json.loads((root / "bench" / "manifest.json").read_text()), wall)


if __name__ == "__main__":
    main()
