"""``neurrator benchmark``: every method on every hold-out regime under one budget (paper A.6).

Reads the ingested dataset, the splits (``ingest/splits/<regime>.json`` and the active
``ingest/split.json``), the stimulus and its captions, the patch targets and the trained
encoder; runs :func:`neurrator.evaluate.benchmark.run_benchmark` with the configured methods
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
from neurrator.evaluate import build_scorer
from neurrator.evaluate.benchmark import BenchmarkInputs, BenchmarkSettings, run_benchmark
from neurrator.evaluate.methods import BENCHMARK_METHODS
from neurrator.evaluate.scores import load_released_pool
from neurrator.evaluate.tables import render_benchmark
from neurrator.narrate import build_caption_bank, build_narrator
from neurrator.preprocess.splits import make_split
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    with thread_limit(config.evaluate.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    ec, bc = config.evaluate, config.evaluate.benchmark
    t0 = time.perf_counter()
    dataset, stimulus, targets = runio.read_dataset(run), runio.read_stimulus(run), runio.read_targets(run)
    active = runio.read_split(run)
    found = {name: _regime_split(run, config, name, dataset) for name in bc.regimes}
    missing = [name for name, split in found.items() if split is None]
    splits = {**{k: v for k, v in found.items() if v is not None and k != active.name}, active.name: active}

    def make_narrator(captions, train_frames):
        bank = build_caption_bank(config.narrate, targets, captions, train_frames)
        return build_narrator(config.narrate, name=bc.narrator, bank=bank)

    inputs = BenchmarkInputs(
        dataset=dataset, targets=targets, splits=splits, active=active.name, frame_rate=stimulus.frame_rate,
        shot_of_frame=stimulus.shot_of_frame, captions=runio.read_references(run, stimulus),
        make_narrator=make_narrator, scorer=build_scorer(ec), released_pool=load_released_pool(),
        checkpoint=run.stage_dir("train") if runio.has_encoder(run) else None,
        context={"narrator": bc.narrator or config.narrate.narrator, "scorer": ec.scorer_model,
                 "stand_ins": runio.stand_ins(run), "missing_regimes": missing},
    )
    settings = BenchmarkSettings(
        max_test_windows=bc.max_test_windows_quick if bc.quick else bc.max_test_windows, n_bootstrap=ec.n_bootstrap,
        ci_level=ec.ci_level, n_permutations=bc.n_permutations, knn_k=ec.knn_k, tolerance_s=ec.frame_id_tolerance_s,
        basis_components=bc.target_components, n_time_chunks=bc.n_time_chunks, seed=config.seed + ec.seed,
    )

    def methods(regime: str):
        names = bc.methods + (bc.active_only_methods if regime == active.name else [])
        return [BENCHMARK_METHODS.create(n, config=config) for n in dict.fromkeys(names)]

    table = run_benchmark(inputs, methods, bc.active_budget(), settings)
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


def _regime_split(run: RunDir, config: RunConfig, name: str, dataset):
    """The regime's split from ingest; a leaky ``*_paper`` regime is built from the dataset's grid;
    ``None`` if neither (the table notes it)."""
    if name in runio.split_regimes(run):
        return runio.read_split(run, name)
    if not name.endswith("_paper"):
        return None
    pp = config.preprocess
    return make_split(name, dataset.n_repeats, dataset.n_frames, pp.split_seed, val_fraction=pp.val_fraction,
                      test_fraction=pp.test_fraction, heldout_fraction=pp.heldout_frame_fraction, window=dataset.window,
                      bins_per_frame=dataset.bins_per_frame, jitter=config.encoder.jitter_bins)
