"""Paper Tables A1–A3 on a run: Neurrator beside Ridge, MLP, PCA+kNN and CEBRA+kNN.

Runs the ``benchmark`` stage on an existing run directory (it needs the ingest, embed and, for
the Neurrator row on the active split, train stages) and prints the tables with the paper's
numbers in reference columns, plus the stage's wall time against its demo budget (3 min on 2
cores in quick mode).

    python benchmarks/bench_tables.py --run runs/demo            # quick mode (the demo's)
    python benchmarks/bench_tables.py --run runs/demo --full     # full budgets (much longer)
    python benchmarks/bench_tables.py --synthetic /tmp/bench-run # build a small run first

``--synthetic DIR`` creates a small run (300 simulated units, 8 repeats) by running the
simulate → ingest → embed → train stages, for when no demo run exists. Its numbers are
synthetic-problem numbers, not demo-session numbers. Timings are noisy: the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from neurrator.config import RunConfig
from neurrator.evaluate.results import BenchmarkTable
from neurrator.rundir import RunDir
from neurrator.stages import run_stage

QUICK_BUDGET_S = 180


def synthetic_run(root: Path) -> RunDir:
    """A small run built by the real upstream stages."""
    config = RunConfig().with_overrides({
        "name": "bench-tables", "data.simulation.n_units": 300, "data.simulation.movie_repeats": 8,
        "data.simulation.scene_repeats": 0, "data.simulation.genotypes": ["Pvalb"],
    })
    run = RunDir.create(root, config)
    for stage in ("simulate", "ingest", "embed", "train"):
        t0 = time.perf_counter()
        run_stage(stage, run, config)
        print(f"[{stage}] {time.perf_counter() - t0:.0f} s")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="existing run directory (e.g. runs/demo)")
    parser.add_argument("--synthetic", type=Path, help="build a small synthetic run here first")
    parser.add_argument("--full", action="store_true", help="full budgets instead of quick mode")
    args = parser.parse_args()
    if (args.run is None) == (args.synthetic is None):
        parser.error("give exactly one of --run or --synthetic")
    run = synthetic_run(args.synthetic) if args.synthetic else RunDir.open(args.run)
    config = run.config().with_overrides({"evaluate.benchmark.quick": not args.full})
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = run_stage("benchmark", run, config)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    table = BenchmarkTable.load(run.stage_dir("benchmark"))
    print(result.table)
    print()
    print(f"benchmark stage: {seconds:.0f} s wall ({'full' if args.full else 'quick'} mode); "
          f"demo budget {QUICK_BUDGET_S} s on 2 cores → {'within' if seconds <= QUICK_BUDGET_S else 'OVER'} budget"
          + ("" if not args.full else " (the budget applies to quick mode only)"))
    print(f"  CPU time of this process: {cpu_seconds:.0f} s (all threads; on an idle 2-core machine the wall time "
          f"is about half of this or more), load average now {os.getloadavg()[0]:.1f}")
    for name, regime in table.regimes.items():
        fits = ", ".join(f"{r.method} {r.fit.cpu_seconds:.0f} CPU s ({r.fit.stop_reason}, {r.fit.steps} steps)"
                         for r in table.rows if r.regime == name)
        print(f"  {name}: {regime.n_train_windows} train / {regime.n_test_windows} test windows; fits: {fits}")
    print(f"budget: {table.budget.label}")
    print(f"stand-ins: {', '.join(sorted(table.context.get('stand_ins', {}))) or 'none'}")


if __name__ == "__main__":
    main()
