"""Wall time of ``neurrator report`` against its 30 s demo budget.

    python benchmarks/bench_report.py               # demo-scale synthetic run (900 frames, 2000 units)
    python benchmarks/bench_report.py --quick       # 200 units
    python benchmarks/bench_report.py --run runs/demo

Times the two halves separately, reading the run (including drawing the timeline rasters and
thumbnails) and rendering the HTML, over a few repeats, and prints them beside the budget.
The synthetic run is the one the report tests use (tests/test_report_synthetic_run.py) at
demo scale. Timings are noisy: other processes share the CPU.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import neurrator.data
from neurrator.report import render_report
from neurrator.rundir import RunDir
from neurrator.stages import DEMO_ORDER
from neurrator.stages.report import collect
from neurrator.stages.report import run as run_report

BUDGET_S = 30.0


def _synthetic_run(root: Path, n_units: int) -> RunDir:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_report_synthetic_run import synthetic_frames, write_synthetic_run

    frames = synthetic_frames(n_frames=900, height=304, width=608)
    # The data layer's reloader is replaced by the synthetic frames (same shape as the demo movie).
    neurrator.data.load_stimulus_record = lambda path: SimpleNamespace(frames=frames, captions={})
    return write_synthetic_run(root, n_frames=900, n_units=n_units, n_repeats=4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, help="an existing run directory (default: a synthetic one)")
    parser.add_argument("--quick", action="store_true", help="synthetic run with 200 units instead of 2000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.run is not None:
            run = RunDir.open(args.run)
            what = f"run {args.run}"
        else:
            n_units = 200 if args.quick else 2000
            t0 = time.perf_counter()
            run = _synthetic_run(Path(tmp) / "run", n_units)
            what = f"synthetic run: 900 frames x 4 repeats x {n_units} units (written in {time.perf_counter() - t0:.1f} s)"
        config = run.config()
        collect_s, render_s, total_s = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            content = collect(run, config)
            t1 = time.perf_counter()
            render_report(content, stage_order=[s for s in DEMO_ORDER if s != "report"])
            t2 = time.perf_counter()
            result = run_report(run, config)
            t3 = time.perf_counter()
            collect_s.append(t1 - t0)
            render_s.append(t2 - t1)
            total_s.append(t3 - t2)
        out = Path(result.outputs[0])
        print(f"neurrator report on {what}")
        print(f"  timeline frames {len(content.timeline.entries)}, figures {content.n_figures}, "
              f"html {out.stat().st_size / 1e6:.2f} MB")
        print(f"  read run + draw timeline : median {statistics.median(collect_s):6.2f} s over {args.repeats}")
        print(f"  render HTML              : median {statistics.median(render_s):6.2f} s")
        print(f"  whole stage (incl. write): median {statistics.median(total_s):6.2f} s")
        print(f"  budget (issue: demo report <= {BUDGET_S:.0f} s): "
              f"{'within' if statistics.median(total_s) <= BUDGET_S else 'OVER'} budget "
              f"({statistics.median(total_s) / BUDGET_S:.1%} of it)")


if __name__ == "__main__":
    main()
