"""Sweep cells that call the layers on a real (tiny) run: encoder fits over unit subsets and
seeds, and scaling-curve points through the analysis's own code."""

from __future__ import annotations

import pandas as pd
import pytest

from neurrator.config import RunConfig
from neurrator.rundir import RunDir
from neurrator.stages import run_stage
from neurrator.sweep.engine import gather, run_sweep
from neurrator.sweep.grid import SweepGrid

pytestmark = pytest.mark.slow  # simulate, ingest, embed and train a tiny run (~1 min)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = RunConfig().with_overrides({
        "cache_dir": str(root / "cache"), "data.simulation.n_units": 60, "data.simulation.genotypes": ["Pvalb"],
        "data.simulation.movie_repeats": 5, "data.simulation.scene_repeats": 0, "encoder.max_steps": 32,
        "encoder.val_every": 16, "encoder.progress": False, "analysis.scaling.max_windows": 12,
    })
    rd = RunDir.create(root / "run", config)
    for stage in ("simulate", "ingest", "embed", "train"):
        run_stage(stage, rd, config)
    return rd


def test_encoder_and_scaling_cells_on_a_run(run):
    encoder = SweepGrid(name="enc", cell="encoder", params={"max_test_windows": 60, "encoder": {"max_steps": 16}},
                        axes={"subset": ["all", "random:10"], "seed": [0, 1]}).cells()
    report = run_sweep(encoder, run.stage_dir("sweep") / "enc", run_root=run.root, executor="inline", progress=False)
    assert report.done == 4 and not report.failed, report.failed
    table = gather(run.stage_dir("sweep") / "enc", encoder)
    assert list(table["n_units"])[2:] == [10, 10] and (table["n_windows"] == 60).all()
    assert ((table["r10"] >= 0) & (table["r10"] <= 1)).all() and (table["r10_chance"] > 0).all()
    assert table.loc[0, "val_cosine"] != table.loc[1, "val_cosine"]  # seeds differ

    scaling = SweepGrid(name="scale", cell="scaling", params={"n_draws": 5},
                        axes={"pool": ["all units"], "size": [3, "all", 100000]}).cells()
    report = run_sweep(scaling, run.stage_dir("sweep") / "scale", run_root=run.root, executor="inline", progress=False)
    assert report.done == 3 and not report.failed, report.failed
    table = gather(run.stage_dir("sweep") / "scale", scaling)
    assert len(pd.read_parquet(run.stage_dir("sweep") / "scale" / "results.parquet")) == 3
    rows = table.set_index(table["size"].astype(str))
    assert rows.loc["3", "N"] == "3" and rows.loc["3", "n_distinct_draws"] > 1
    assert rows.loc["all", "N"] == "all" and "bootstrap" in rows.loc["all", "ci_method"]
    assert bool(rows.loc["100000", "skipped"])  # larger than the pool: the pool's "all" point covers it
    assert rows.loc["3", "sbert_lo"] <= rows.loc["3", "sbert"] <= rows.loc["3", "sbert_hi"]
