"""Wall time of ``neurrator report`` on a real run, against its 30 s demo budget.

    python benchmarks/bench_report.py --run runs/demo [--repeats 3]

Times the two halves separately, reading the run and drawing the pictures (frame sprite,
raster strips, figures), and rendering the HTML, over a few repeats, and prints them beside
the budget, the page size and the machine load. Timings are noisy: other processes share the CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from neurrator.report import build_report, render_report
from neurrator.rundir import RunDir
from neurrator.stages.report import read_inputs
from neurrator.stages.report import run as run_report

BUDGET_S = 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run directory the pipeline wrote")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    run = RunDir.open(args.run)
    config = run.config()
    build_s, render_s, total_s = [], [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        content = build_report(read_inputs(run, config))
        t1 = time.perf_counter()
        render_report(content, context_bins=config.report.raster_context_bins)
        t2 = time.perf_counter()
        result = run_report(run, config)
        t3 = time.perf_counter()
        build_s.append(t1 - t0)
        render_s.append(t2 - t1)
        total_s.append(t3 - t2)
    out = Path(result.outputs[0])
    print(f"neurrator report on {args.run} (load average {os.getloadavg()[0]:.2f})")
    print(f"  {len(content.results)} result tables, {content.n_figures} figures, "
          f"{len(content.timeline.windows)} timeline windows, html {out.stat().st_size / 1e6:.2f} MB")
    print(f"  read run + draw pictures : median {statistics.median(build_s):6.2f} s over {args.repeats}")
    print(f"  render HTML              : median {statistics.median(render_s):6.2f} s")
    print(f"  whole stage (incl. write): median {statistics.median(total_s):6.2f} s")
    print(f"  budget (demo report <= {BUDGET_S:.0f} s): "
          f"{'within' if statistics.median(total_s) <= BUDGET_S else 'OVER'} budget "
          f"({statistics.median(total_s) / BUDGET_S:.1%} of it)")


if __name__ == "__main__":
    main()
