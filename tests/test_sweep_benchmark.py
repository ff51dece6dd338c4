"""The benchmark through the sweep engine: a ``benchmark`` cell (method × regime × seed × unit
subset × session) reproduces the benchmark stage's row for the same method, regime and seed,
and a rerun computes only the missing cells."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_evaluate_stage import SMALL_BENCHMARK, build_run

from neurrator.evaluate.results import BenchmarkTable, MethodRow
from neurrator.stages import run_stage
from neurrator.sweep.engine import RESULTS_FILE, gather, result_path, run_sweep
from neurrator.sweep.grid import SweepGrid

SMALL = {**SMALL_BENCHMARK, "methods": ["ridge", "mlp"], "active_only_methods": [], "regimes": ["front_only"]}


@pytest.fixture(scope="module")
def benchmarked(tmp_path_factory):
    """A small run with the benchmark stage's table (ridge and MLP on front_only and the active split)."""
    run, config, _ = build_run(tmp_path_factory.mktemp("sweep-bench"),
                               config_overrides={"evaluate": {"benchmark": SMALL, "n_bootstrap": 200}})
    run_stage("benchmark", run, config)
    return run, BenchmarkTable.load(run.stage_dir("benchmark"))


def _assert_same_row(cell_row: MethodRow, stage_row: MethodRow) -> None:
    assert cell_row.method == stage_row.method and cell_row.regime == stage_row.regime
    assert cell_row.fit.steps == stage_row.fit.steps and cell_row.fit.stop_reason == stage_row.fit.stop_reason
    assert cell_row.fit.best_step == stage_row.fit.best_step
    assert cell_row.fit.best_val_score == stage_row.fit.best_val_score
    assert cell_row.fit.history == stage_row.fit.history
    assert set(cell_row.metrics) == set(stage_row.metrics)
    for key, m in stage_row.metrics.items():
        c = cell_row.metrics[key]
        assert (c.value, c.chance, c.p_value) == (m.value, m.chance, m.p_value), key
        assert (c.ci is None) == (m.ci is None), key
        if m.ci is not None:
            assert (c.ci.low, c.ci.high) == (m.ci.low, m.ci.high), key


def _numbers(result: dict) -> dict:
    """A cell's result without its timings (CPU and wall seconds of the fit)."""
    row = json.loads(result["method_row"])
    row["fit"] = {k: v for k, v in row["fit"].items() if not k.endswith("_seconds")}
    return {**{k: v for k, v in result.items() if not k.endswith("_seconds")}, "method_row": row}


def test_benchmark_cells_equal_the_stage_rows_and_a_rerun_resumes(benchmarked):
    run, table = benchmarked
    grid = SweepGrid(name="bench", cell="benchmark",
                     axes={"method": ["ridge", "mlp", "neurrator_checkpoint"],
                           "regime": ["front_only", "sparse_random"], "seed": [0, 1]})
    cells = grid.cells() + SweepGrid(name="bench", cell="benchmark", params={"method": "ridge", "regime": "front_only"},
                                     axes={"subset": ["random:20"], "draw": [0, 1]}).cells()
    folder = run.stage_dir("sweep") / "bench"
    report = run_sweep(cells, folder, run_root=run.root, executor="inline", progress=False)
    assert report.done == len(cells) == 14 and not report.failed, report.failed
    results = gather(folder, cells)
    assert len(pd.read_parquet(folder / RESULTS_FILE)) == 14

    full = results[results["subset"].isna()] if "subset" in results else results
    ran = full[full["status"] == "done"]
    assert len(ran) == 8
    for _, r in ran[ran["seed"] == 0].iterrows():  # seed offset 0, every unit: the stage's row, same numbers
        _assert_same_row(MethodRow.from_dict(json.loads(r["method_row"])), table.row(r["regime"], r["method_label"]))
        assert r["r10"] == table.row(r["regime"], r["method_label"]).metrics["r10"].value
    by = ran.set_index(["method", "regime", "seed"])
    # Another fit seed: the closed-form ridge is unchanged, the MLP is not.
    assert by.loc[("ridge", "front_only", 1), "cka"] == by.loc[("ridge", "front_only", 0), "cka"]
    assert by.loc[("mlp", "front_only", 1), "best_val_score"] != by.loc[("mlp", "front_only", 0), "best_val_score"]
    assert (ran["budget"] == table.budget.label).all() and (ran["n_units"] == 48).all()
    # The checkpoint row does not apply (no trained encoder in this run): recorded, not failed.
    ckpt = full[full["method"] == "neurrator_checkpoint"]
    assert (ckpt["status"] == "not_run").all() and ckpt["reason"].str.contains("checkpoint").all()
    subsets = results[results["subset"] == "random:20"]
    assert (subsets["n_units"] == 20).all() and subsets["cka"].nunique() == 2  # two draws, two unit sets
    assert np.isfinite(subsets["r10_chance"]).all()

    # A rerun computes nothing; a lost result file is the only cell computed again, same numbers.
    again = run_sweep(cells, folder, run_root=run.root, executor="inline", progress=False)
    assert (again.skipped, again.done) == (14, 0)
    lost = next(c for c in cells if c.axes.get("method") == "mlp" and c.axes.get("seed") == 1)
    before = json.loads(result_path(folder, lost).read_text())["result"]
    result_path(folder, lost).unlink()
    resumed = run_sweep(cells, folder, run_root=run.root, executor="inline", progress=False)
    assert (resumed.skipped, resumed.done) == (13, 1)
    after = json.loads(result_path(folder, lost).read_text())["result"]
    assert _numbers(after) == _numbers(before)
    assert len(gather(folder, cells)) == 14


@pytest.mark.slow
def test_benchmark_cells_on_ray_workers_equal_the_stage_rows(benchmarked):
    run, table = benchmarked
    cells = SweepGrid(name="bench-ray", cell="benchmark",
                      axes={"method": ["ridge", "mlp"], "regime": ["front_only", "sparse_random"]}).cells()
    folder = run.stage_dir("sweep") / "bench-ray"
    report = run_sweep(cells, folder, run_root=run.root, executor="ray", num_cpus=2, progress=False)
    assert report.done == 4 and not report.failed, report.failed
    for _, r in gather(folder, cells).iterrows():
        _assert_same_row(MethodRow.from_dict(json.loads(r["method_row"])), table.row(r["regime"], r["method_label"]))


def test_benchmark_cells_per_session(tmp_path):
    """The ``session`` axis: a cell sees only that session's units (here two halves of the units)."""
    import shutil
    from dataclasses import replace

    from neurrator.preprocess.io import load_dataset, save_dataset

    small = {**SMALL, "methods": ["ridge"]}
    run, _, _ = build_run(tmp_path, config_overrides={"evaluate": {"benchmark": small, "n_bootstrap": 200}})
    folder = run.stage_dir("ingest") / "dataset"
    dataset = load_dataset(folder)
    units = dataset.units.assign(session_id=["7001"] * 24 + ["7002"] * 24)
    save_dataset(replace(dataset, responses=np.asarray(dataset.responses), units=units), tmp_path / "dataset")
    shutil.rmtree(folder)
    shutil.move(tmp_path / "dataset", folder)
    cells = SweepGrid(name="sessions", cell="benchmark", params={"method": "ridge"},
                      axes={"session": ["7001", "7002"], "subset": ["all", "area:CA1"]}).cells()
    report = run_sweep(cells, run.stage_dir("sweep") / "sessions", run_root=run.root, executor="inline", progress=False)
    table = gather(run.stage_dir("sweep") / "sessions", cells).set_index(["session", "subset"])
    # The last 8 units are CA1 and all in session 7002: 7001 has none, so that cell fails naming the subset.
    assert report.done == 3 and next(iter(report.failed.values())).endswith("selects no units")
    assert table.loc[("7001", "all"), "n_units"] == 24 and table.loc[("7002", "all"), "n_units"] == 24
    assert table.loc[("7002", "area:CA1"), "n_units"] == 8
    assert table.loc[("7001", "all"), "cka"] != table.loc[("7002", "all"), "cka"]
