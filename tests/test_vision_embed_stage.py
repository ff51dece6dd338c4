"""The embed stage: ingest's stimulus record in, a targets pointer and a stand-in label out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError
from neurrator.data import save_stimulus_record
from neurrator.data.stimulus import load_stimulus
from neurrator.rundir import RunDir
from neurrator.runio import read_targets
from neurrator.stages import run_stage


def make_run(tmp_path, stimulus_name="natural_scenes", stimulus_dir=None):
    config = RunConfig.validated(
        {"cache_dir": str(tmp_path / "cache"), "data": {"stimulus": stimulus_name}, "vision": {"progress": False}}
    )
    run = RunDir.create(tmp_path / "run", config)
    stimulus = load_stimulus(stimulus_name, stimulus_dir)
    save_stimulus_record(run.stage_dir("ingest") / "stimulus.json", stimulus, stimulus_dir=stimulus_dir)
    return run, config, stimulus


def test_embeds_the_scene_bank_and_labels_the_stand_in(tmp_path):
    run, config, scenes = make_run(tmp_path)
    result = run_stage("embed", run, config)
    assert "stand-in" in result.summary and "computed" in result.summary
    record = json.loads((run.stage_dir("embed") / "targets.json").read_text())
    assert record["stimulus"] == "natural_scenes" and record["stimulus_hash"] == scenes.content_hash
    assert record["shape"] == [scenes.n_frames, 576, 64] and record["is_stand_in"] and not record["cache_hit"]
    assert "vision_space" in run.manifest()["stand_ins"]
    targets = read_targets(run, verify="checksum")
    assert targets.patches.shape == (scenes.n_frames, 576, 64) and targets.info.is_stand_in

    again = run_stage("embed", run, config)
    assert "from the cache" in again.summary
    assert json.loads((run.stage_dir("embed") / "targets.json").read_text())["cache_hit"]


def test_allen_template_run(tmp_path):
    folder = tmp_path / "templates"
    folder.mkdir()
    np.save(folder / "natural_movie_one.npy", np.random.default_rng(0).integers(0, 256, (6, 40, 80), dtype=np.uint8))
    run, config, _ = make_run(tmp_path, "natural_movie_one", folder)
    run_stage("embed", run, config)
    assert read_targets(run).patches.shape == (6, 576, 64)


def test_needs_ingest_first(tmp_path):
    config = RunConfig.validated({"cache_dir": str(tmp_path / "cache")})
    run = RunDir.create(tmp_path / "run", config)
    with pytest.raises(StageUnavailableError, match="ingest"):
        run_stage("embed", run, config)


def test_pointer_to_a_damaged_entry_is_refused(tmp_path):
    run, config, _ = make_run(tmp_path)
    run_stage("embed", run, config)
    entry = json.loads((run.stage_dir("embed") / "targets.json").read_text())["entry"]
    (tmp_path / "cache").joinpath(entry).joinpath("manifest.json").unlink()
    with pytest.raises(InputError, match="unusable"):
        read_targets(run)
