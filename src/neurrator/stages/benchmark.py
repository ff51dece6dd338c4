"""``neurrator benchmark``: every method on every hold-out regime under one budget (paper A.6).

Reads the ingested dataset, the splits (``ingest/splits/<regime>.json`` and the active
``ingest/split.json``), the stimulus and its captions, the patch targets and the trained
encoder (:func:`neurrator.runio.read_benchmark_inputs`, which the sweep's ``benchmark`` cells
share); runs :func:`neurrator.evaluate.benchmark.run_benchmark` with the configured methods
(:data:`neurrator.evaluate.methods.BENCHMARK_METHODS`) under the configured budget; writes
``benchmark/tables.json`` (a :class:`~neurrator.evaluate.results.BenchmarkTable`) and
``benchmark/tables.md`` (its Markdown tables). How every number is made: ``docs/evaluation.md``.
"""

from __future__ import annotations

import time

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.io import atomic_write_text
from neurrator.core.threads import thread_limit
from neurrator.evaluate.benchmark import benchmark_methods, benchmark_settings, run_benchmark
from neurrator.evaluate.tables import render_benchmark
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    with thread_limit(config.evaluate.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    t0 = time.perf_counter()
    inputs = runio.read_benchmark_inputs(run, config)
    missing = inputs.context["missing_regimes"]
    table = run_benchmark(inputs, lambda regime: benchmark_methods(config, regime, inputs.active),
                          config.evaluate.benchmark.active_budget(), benchmark_settings(config))
    table.context["seconds"] = round(time.perf_counter() - t0, 1)
    out = run.stage_dir("benchmark")
    table.save(out)
    markdown = render_benchmark(table)
    atomic_write_text(out / "tables.md", markdown + "\n")
    return StageResult(
        summary=(f"{len(table.regimes)} split(s) × {len(table.methods())} methods in {table.context['seconds']:.0f} s "
                 f"({table.budget.label})" + (f"; regimes without a split file: {missing}" if missing else "")),
        outputs=[str(out / "tables.json"), str(out / "tables.md")],
        table=markdown,
    )
