"""The ``train`` stage: run-directory inputs in, checkpoint + log out, resume after a crash."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from neurrator.config import RunConfig
from neurrator.encoder import Neurrator
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.preprocess.io import load_dataset, save_dataset, save_split
from neurrator.rundir import RunDir
from neurrator.stages import run_stage

TINY = {
    "d_model": 32, "n_heads": 2, "ff_dim": 64, "conv_channels": 16, "unit_bottleneck": 16, "basis_rank": 8,
    "basis_hidden": 32, "batch_size": 32, "windows_per_epoch": 128, "max_epochs": 3, "max_steps": 0, "val_every": 0,
    "progress": False, "lr": 2e-3,
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def run_with_inputs(tmp_path, monkeypatch):
    dataset, targets, split = synthetic_problem(n_units=24, n_frames=40, n_repeats=5, n_patches=9, dim=6, seed=2)
    config = RunConfig().with_overrides({f"encoder.{k}": v for k, v in TINY.items()})
    run = RunDir.create(tmp_path / "run", config)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    save_split(split, run.stage_dir("ingest") / "split.json")
    # The embed stage's pointer format belongs to the vision layer; hand the stage the targets.
    monkeypatch.setattr("neurrator.runio.read_targets", lambda run, **kw: targets)
    return run, config, targets, split


class _Crash(Exception):
    pass


def test_train_stage_writes_checkpoint_log_and_resumes(run_with_inputs):
    run, config, targets, split = run_with_inputs
    dataset = load_dataset(run.stage_dir("ingest") / "dataset")

    def crash_after_first(state):
        if state.epoch == 1:
            raise _Crash

    # A crashed earlier attempt left train/resume/ behind.
    with pytest.raises(_Crash):
        Neurrator(seed=config.seed, **config.encoder.model_dump()).fit(
            dataset, targets, split, resume_dir=run.stage_dir("train") / "resume", on_validation=crash_after_first)

    result = run_stage("train", run, config)
    out = run.stage_dir("train")
    assert "resumed" in result.summary and "validation patch cosine" in result.summary
    assert (out / "checkpoint.safetensors").is_file() and not (out / "resume").exists()
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["split"]["name"] == "repeats" and meta["space"]["space_id"] == targets.info.space_id
    assert meta["encoder_config"]["preset"] == "demo" and meta["encoder_config"]["head"] == "basis"
    assert run.manifest()["stages"]["train"]["status"] == "done"

    fresh = Neurrator(seed=config.seed, **config.encoder.model_dump()).fit(dataset, targets, split)
    loaded = Neurrator.load(out, expect_units=dataset.unit_ids, expect_space=targets.info)
    assert loaded.meta_.metrics["val_cosine"] == fresh.meta_.metrics["val_cosine"]
    assert loaded.score(dataset, split.test, targets) > loaded.meta_.metrics["mean_patch_baseline"]
