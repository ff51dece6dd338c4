"""The ``narrate`` stage on a small planted problem: files, schema, ordering, no leakage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from neurrator.config import RunConfig
from neurrator.data.types import Stimulus
from neurrator.encoder import Neurrator
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.preprocess.io import save_dataset, save_split
from neurrator.preprocess.types import Split, by_frame
from neurrator.rundir import RunDir
from neurrator.runio import read_narrated, read_predictions
from neurrator.stages import run_stage

N_FRAMES, FRAMES_PER_SHOT = 48, 8


@pytest.fixture(scope="module")
def problem():
    dataset, targets, split = synthetic_problem(n_units=24, n_frames=N_FRAMES, n_repeats=4, n_patches=4, dim=8, seed=0)
    model = Neurrator(seed=0, max_epochs=1, windows_per_epoch=64, d_model=16, n_heads=2, ff_dim=16,
                      conv_channels=8, basis_rank=4, basis_hidden=16)
    return dataset, targets, split, model.fit(dataset, targets, split)


HELD_OUT_SHOT = 2  # frames 16-23: a whole shot only ever seen at test time


def _frames_held_out_split(split: Split) -> Split:
    """Repeats 0-2 of the other shots train, repeat 3 validates; every repeat of the held-out shot tests."""
    pairs = np.concatenate([split.train, split.val, split.test])
    held = pairs[:, 1] // FRAMES_PER_SHOT == HELD_OUT_SHOT
    return Split("contiguous_middle", train=pairs[~held & (pairs[:, 0] < 3)], val=pairs[~held & (pairs[:, 0] == 3)],
                 test=pairs[held], seed=0)


def _stimulus() -> Stimulus:
    frames = np.random.default_rng(0).integers(0, 255, size=(N_FRAMES, 8, 8), dtype=np.uint8)
    shots = np.arange(N_FRAMES) // FRAMES_PER_SHOT
    captions = {f: [f"shot {shots[f]} caption"] for f in range(N_FRAMES)}
    return Stimulus("natural_movie_one", frames, 30.0, captions, shot_of_frame=shots, is_stand_in=True)


@pytest.fixture
def run_dir(tmp_path, problem, monkeypatch):
    dataset, targets, split, model = problem
    config = RunConfig().with_overrides({"narrate.narrator": "retrieval"})
    run = RunDir.create(tmp_path / "run", config)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    save_split(_frames_held_out_split(split), run.stage_dir("ingest") / "split.json")
    (run.stage_dir("ingest") / "stimulus.json").write_text("{}")
    (run.stage_dir("embed")).mkdir()
    (run.stage_dir("embed") / "targets.json").write_text("{}")
    model.save(run.stage_dir("train"))
    # The stimulus record and the target cache are other stages' formats; feed their results directly.
    monkeypatch.setattr("neurrator.runio.read_targets", lambda run: targets)
    monkeypatch.setattr("neurrator.runio.read_stimulus", lambda run: _stimulus())
    return run, config


def test_by_frame_orders_pairs_by_frame_then_repeat():
    assert by_frame(np.array([[1, 5], [0, 5], [2, 1]])).tolist() == [[2, 1], [0, 5], [1, 5]]


def test_narrate_stage_writes_predictions_and_narrations(run_dir, problem):
    run, config = run_dir
    dataset, targets, split, model = problem
    result = run_stage("narrate", run, config)
    split = _frames_held_out_split(split)

    predictions, narrations = read_narrated(run, targets)
    windows = predictions.pairs
    assert windows.tolist() == by_frame(split.test).tolist()
    assert predictions.patches.dtype == np.float16 and predictions.patches.shape == (len(windows), 4, 8)
    assert predictions.checkpoint.startswith("train@") and predictions.n_units == dataset.n_units
    np.testing.assert_allclose(predictions.patches[:3].astype(np.float32),
                               model.predict(dataset, windows[:3]).numpy(), atol=2e-2, rtol=1e-2)

    table = pd.read_parquet(run.stage_dir("narrate") / "narrations.parquet")
    assert list(table.columns) == ["window", "repeat", "frame", "narration", "narrator", "is_stand_in",
                                   "retrieved_frame", "copied", "references"]
    assert len(narrations) == len(windows) and (narrations.windows == np.arange(len(windows))).all()
    assert set(narrations.retrieved_frame) <= set(split.train_frames.tolist())
    assert f"shot {HELD_OUT_SHOT} caption" not in narrations.sentences, "a held-out shot's caption leaked"
    assert narrations.narrator.name == "retrieval" and narrations.narrator.is_stand_in
    assert narrations.copied.all(), "the retrieval narrator returns bank captions verbatim"
    assert narrations.bank["rule"] == "training frames only" and narrations.bank["n_user_entries"] == 0
    assert narrations.bank["n_frames"] == len(split.train_frames)
    assert [list(r) for r in narrations.references] == [[f"shot {f // FRAMES_PER_SHOT} caption"]
                                                        for f in narrations.frames]

    manifest = run.manifest()
    assert "narrator" in manifest["stand_ins"] and "reference_captions" in manifest["stand_ins"]
    summary = json.loads((run.stage_dir("narrate") / "summary.json").read_text())
    assert summary["n_narrated"] == len(windows) and "retrieval" in result.summary


def test_narrate_stage_cap_narrates_a_subset(run_dir):
    run, config = run_dir
    config = config.with_overrides({"narrate.max_windows": 5})
    run_stage("narrate", run, config)
    table = pd.read_parquet(run.stage_dir("narrate") / "narrations.parquet")
    assert len(table) == 5
    assert len(read_predictions(run)) > 5  # predictions cover every test window
