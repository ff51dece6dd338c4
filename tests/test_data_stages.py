"""The simulate and ingest stages on a small run with the embedded demo stimulus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.data import load_stimulus_record
from neurrator.preprocess.io import load_dataset, load_split
from neurrator.rundir import RunDir
from neurrator.stages import run_stage

pytestmark = pytest.mark.slow  # renders the 900-frame demo movie and runs two stages (~25 s)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    config = RunConfig().with_overrides({
        "cache_dir": str(root / "cache"),
        "data.simulation.n_units": 60,
        "data.simulation.genotypes": ["Pvalb", "Vip"],
        "data.simulation.movie_repeats": 4,
        "data.simulation.scene_repeats": 0,
        "preprocess.val_fraction": 0.25,
        "preprocess.test_fraction": 0.25,
    })
    rd = RunDir.create(root / "run", config)
    sim = run_stage("simulate", rd, config)
    ing = run_stage("ingest", rd, config)
    return rd, config, sim, ing


def test_simulate_writes_sessions_and_truth(run):
    rd, _, result, _ = run
    folder = rd.stage_dir("simulate")
    index = json.loads((folder / "sessions.json").read_text())["sessions"]
    assert [s["genotype"] for s in index] == ["Pvalb", "Vip"]
    for k in range(2):
        assert (folder / f"session_{k}.nwb").is_file()
        truth = json.loads((folder / f"session_{k}.truth.json").read_text())
        assert len(truth["units"]["unit_id"]) == 60
    assert "stand-in" in result.summary


def test_ingest_builds_one_pseudo_mouse(run):
    rd, _config, _, result = run
    folder = rd.stage_dir("ingest")
    ds = load_dataset(folder / "dataset")
    assert ds.n_repeats == 4 and ds.n_frames == 900 and ds.responses.shape[1] == 900 * 4 + 2 * ds.pad
    assert ds.units["session_id"].nunique() == 2
    for col in ("area", "probe", "depth", "cell_type", "session_id"):
        assert col in ds.units
    assert set(ds.units["cell_type"].dropna()) <= {"PV", "VIP"}
    split = load_split(folder / "split.json")
    assert split.name == "repeats" and len(np.unique(split.test[:, 0])) == 1
    for name in ("repeats", "sparse_random", "contiguous_middle", "front_only"):
        assert load_split(folder / "splits" / f"{name}.json").name == name
    manifest = rd.manifest()
    assert manifest["pseudo_mouse_alignment"]["max_error_ms"] < 1000 / 120
    assert "session" in manifest["stand_ins"] and "stimulus" in manifest["stand_ins"]
    assert (folder / "units.parquet").is_file()
    assert "pseudo-mouse of 2 session(s)" in result.summary


def test_stimulus_record_reloads_and_detects_changes(run, tmp_path):
    rd, *_ = run
    path = rd.stage_dir("ingest") / "stimulus.json"
    stimulus = load_stimulus_record(path)
    assert stimulus.n_frames == 900 and stimulus.is_stand_in
    record = json.loads(path.read_text())
    record["content_hash"] = "0" * 64
    changed = tmp_path / "stimulus.json"
    changed.write_text(json.dumps(record))
    with pytest.raises(InputError, match="changed since ingest"):
        load_stimulus_record(changed)


def test_empty_subset_fails_without_new_output(run):
    rd, config, *_ = run
    before = (rd.stage_dir("ingest") / "split.json").stat().st_mtime_ns
    bad = config.with_overrides({"preprocess.subset": "cell_type:SST"})
    with pytest.raises(InputError, match="selects no units"):
        run_stage("ingest", rd, bad)
    assert (rd.stage_dir("ingest") / "split.json").stat().st_mtime_ns == before


def test_failed_simulation_keeps_the_previous_sessions(run):
    rd, config, *_ = run
    before = sorted(p.name for p in rd.stage_dir("simulate").iterdir())
    with pytest.raises(InputError, match="unknown areas"):
        run_stage("simulate", rd, config.with_overrides({"data.simulation.areas": ["VISx"]}))
    assert sorted(p.name for p in rd.stage_dir("simulate").iterdir()) == before
