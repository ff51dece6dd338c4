"""The ``analyze`` stage on a small planted run: every analysis folder, timings and summary."""

from __future__ import annotations

import json

import numpy as np
import pytest

from typer.testing import CliRunner

from neurrator.analysis.result import AnalysisResult
from neurrator.cli import app
from neurrator.config import RunConfig
from neurrator.data.types import Stimulus
from neurrator.encoder import Neurrator
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.preprocess.io import save_dataset, save_split
from neurrator.rundir import RunDir
from neurrator.stages import run_stage

N_FRAMES, FRAMES_PER_SHOT = 48, 8
WORDS = [
    "a dark room with shadows",
    "a red car in a parking lot",
    "a cat on a sofa",
    "a person walking on a street",
    "trees in a forest",
    "boats in a harbour",
]

SMALL = {
    "max_windows": 48,
    "scaling": {"sizes": [1, 4, "all"], "max_windows": 16},
    "contrasts": {"n_permutations": 9, "concepts": ["a car or vehicle", "darkness or shadows"]},
    "sae": {
        "expansion": 2,
        "k": 2,
        "epochs": 1,
        "n_bootstrap": 100,
        "top_k": 3,
        "max_train_vectors": 2000,
    },
    "neurons": {"units": 4, "max_windows": 8, "narrated_windows": 4},
    "attribution": {"max_windows": 8, "n_targets": 2},
}


def _stimulus() -> Stimulus:
    frames = np.random.default_rng(0).integers(0, 255, size=(N_FRAMES, 8, 8), dtype=np.uint8)
    shots = np.arange(N_FRAMES) // FRAMES_PER_SHOT
    captions = {f: [WORDS[shots[f]], f"shot {shots[f]}"] for f in range(N_FRAMES)}
    return Stimulus(
        "natural_movie_one", frames, 30.0, captions, shot_of_frame=shots, is_stand_in=True
    )


@pytest.fixture
def planted_run(tmp_path, monkeypatch):
    """A run with ingest, embed and train outputs (the stimulus record and targets fed directly)."""
    dataset, targets, split = synthetic_problem(
        n_units=24, n_frames=N_FRAMES, n_repeats=4, n_patches=4, dim=8, seed=0
    )
    cell = np.array([None, "PV", "SST", "VIP"] * 6, dtype=object)
    dataset.units["cell_type"] = cell
    model = Neurrator(
        seed=0,
        max_epochs=1,
        windows_per_epoch=64,
        d_model=16,
        n_heads=2,
        ff_dim=16,
        conv_channels=8,
        basis_rank=4,
        basis_hidden=16,
    ).fit(dataset, targets, split)
    config = RunConfig().with_overrides({"analysis": SMALL})
    run = RunDir.create(tmp_path / "run", config)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    save_split(split, run.stage_dir("ingest") / "split.json")
    model.save(run.stage_dir("train"))
    # Other stages' formats (stimulus record, target cache) are fed directly.
    monkeypatch.setattr("neurrator.runio.read_stimulus", lambda run: _stimulus())
    monkeypatch.setattr("neurrator.runio.read_targets", lambda run: targets)
    (run.stage_dir("ingest") / "stimulus.json").write_text("{}")
    run.stage_dir("embed").mkdir()
    (run.stage_dir("embed") / "targets.json").write_text("{}")

    return run, config


@pytest.mark.slow
def test_analyze_stage_writes_every_analysis(planted_run):
    run, config = planted_run
    result = run_stage("analyze", run, config)

    out = run.stage_dir("analyze")
    timings = json.loads((out / "timings.json").read_text())
    assert set(timings["seconds"]) == {"load_inputs", "total", *config.analysis.analyses}
    assert timings["narrator"].startswith("retrieval")
    for name in config.analysis.analyses:
        assert (out / name / "summary.json").is_file() and (out / name / "results.json").is_file()
        assert list((out / name).glob("*.png"))
    assert "scaling" in result.table and "units/s" in result.table
    sae = json.loads((out / "sae" / "summary.json").read_text())
    assert sae["populations"] == "cell types" and set(sae["unique_features"]) == {
        "PV",
        "SST",
        "VIP",
    }
    assert run.manifest()["stages"]["analyze"]["status"] == "done"


def test_each_analysis_runs_alone_from_the_cli(planted_run):
    """``--only`` runs one analysis for this invocation; the SAE that neurons reads is its input."""
    run, config = planted_run
    runner = CliRunner()
    result = runner.invoke(app, ["analyze", "--run", str(run.root), "--only", "neurons"])
    assert result.exit_code == 0, result.output
    out = run.stage_dir("analyze")
    assert sorted(p.name for p in out.iterdir()) == ["neurons", "timings.json"]
    neurons = AnalysisResult.load(out / "neurons")
    assert neurons.inputs["concepts"] and neurons.results["units"][0]["features"]  # SAE features, no sae run
    assert json.loads((out / "timings.json").read_text())["seconds"].keys() == {"load_inputs", "neurons", "total"}
    assert run.config().analysis.analyses == config.analysis.analyses  # --only is not saved in the run

    result = runner.invoke(app, ["analyze", "--run", str(run.root), "--only", "attribution",
                                 "--set", "analysis.attribution.targets=dims"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["attribution", "neurons", "timings.json"]
    attribution = AnalysisResult.load(out / "attribution")
    assert attribution.summary["target_kind"] == "dims" and attribution.inputs["config"]["targets"] == "dims"
    assert attribution.figures.keys() == {"attribution.png"}
