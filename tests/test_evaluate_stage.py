"""The evaluate stage on a small synthetic run directory (real embed stage, synthetic narrations)."""

import json

import numpy as np
import pandas as pd
import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError
from neurrator.data.stimulus import load_stimulus
from neurrator.data.stimulus_record import save_stimulus_record
from neurrator.encoder.predictions import Predictions
from neurrator.narrate.narrations import Narrations, NarratorInfo
from neurrator.preprocess.io import save_dataset, save_split
from neurrator.preprocess.splits import make_split
from neurrator.preprocess.types import NeuralDataset, ZScoreStats
from neurrator.rundir import RunDir
from neurrator.runio import read_targets, write_narrated
from neurrator.stages import run_stage

TOPICS = [
    ("a cat sleeping on a sofa", "a tabby cat curled up on a couch", "close-up of a sleeping cat"),
    ("a red car parked on a street", "a car by the kerb in a city", "an automobile on an urban road"),
    ("tall trees in a green forest", "a path through woodland", "sunlight between forest trees"),
    ("boats moored in a harbour", "sailing boats on calm water", "a marina with small boats"),
    ("a rocket launching into the sky", "a space shuttle lifting off", "smoke trail of a launching rocket"),
    ("the face of an astronaut", "a woman in a space suit", "portrait of an astronaut smiling"),
]
N_FRAMES, FRAMES_PER_SHOT, N_REPEATS, N_UNITS = 120, 20, 8, 48


def _movie(rng):
    """Six shots with distinct textures (orientation and scale), slowly drifting within a shot."""
    yy, xx = np.mgrid[0:48, 0:96].astype(np.float32)
    frames = []
    for f in range(N_FRAMES):
        shot, t = divmod(f, FRAMES_PER_SHOT)
        angle, freq = shot * np.pi / 6, 0.15 + 0.08 * shot
        phase = xx * np.cos(angle) + yy * np.sin(angle) + 2 * t
        img = 128 + 90 * np.sin(freq * phase) * (0.5 + shot / 10) + rng.normal(0, 5, size=yy.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return np.stack(frames)


def build_run(root, *, seed=0, config_overrides=None):
    """A run directory with ingest/, embed/ and narrate/ outputs; returns (run, config, targets)."""
    rng = np.random.default_rng(seed)
    stim_dir = root / "stimulus"
    stim_dir.mkdir(parents=True)
    np.save(stim_dir / "natural_movie_one.npy", _movie(rng))
    captions = {str(f): list(TOPICS[f // FRAMES_PER_SHOT]) for f in range(N_FRAMES)}
    (stim_dir / "captions.json").write_text(json.dumps(captions))
    overrides = {"cache_dir": str(root / "cache"), "evaluate": {"n_bootstrap": 200, "controls_max_windows": 60}}
    config = RunConfig.validated({**overrides, **(config_overrides or {})})
    run = RunDir.create(root / "run", config)
    stimulus = load_stimulus("natural_movie_one", stim_dir, stim_dir / "captions.json")
    save_stimulus_record(run.stage_dir("ingest") / "stimulus.json", stimulus, stimulus_dir=stim_dir,
                         captions_json=stim_dir / "captions.json")
    run_stage("embed", run, config)
    targets = read_targets(run)
    # Units driven by the frame's pooled target (visual) or by nothing (hippocampus).
    pooled = np.asarray(targets.patches, dtype=np.float32).mean(1)
    pooled = (pooled - pooled.mean(0)) / (pooled.std(0) + 1e-6)
    weights = rng.normal(size=(pooled.shape[1], N_UNITS)) / np.sqrt(pooled.shape[1])
    weights[:, -8:] = 0
    bpf, window, pad = 4, 20, 10
    drive = np.repeat(pooled @ weights, bpf, axis=0)
    responses = np.zeros((N_REPEATS, N_FRAMES * bpf + 2 * pad, N_UNITS), dtype=np.float32)
    responses[:, pad:-pad] = drive + 0.5 * rng.normal(size=(N_REPEATS, N_FRAMES * bpf, N_UNITS))
    units = pd.DataFrame({"area": ["VISp"] * (N_UNITS - 8) + ["CA1"] * 8, "probe": "probeA",
                          "depth": np.linspace(0, 3000, N_UNITS), "cell_type": None},
                         index=pd.Index(np.arange(1000, 1000 + N_UNITS), name="unit_id"))
    dataset = NeuralDataset(stimulus="natural_movie_one", responses=responses, bins_per_frame=bpf, window=window,
                            pad=pad, units=units, zscore=ZScoreStats(np.zeros(N_UNITS, np.float32),
                                                                     np.ones(N_UNITS, np.float32)),
                            n_frames=N_FRAMES)
    save_dataset(dataset, run.stage_dir("ingest") / "dataset")
    # Few held-out frames, so the leakage guard (5 frames each side) leaves training frames.
    for name in ("repeats", "sparse_random", "contiguous_middle", "front_only"):
        save_split(make_split(name, N_REPEATS, N_FRAMES, seed, heldout_fraction=0.05),
                   run.stage_dir("ingest") / "splits" / f"{name}.json")
    split = make_split("sparse_random", N_REPEATS, N_FRAMES, seed, heldout_fraction=0.05)
    save_split(split, run.stage_dir("ingest") / "split.json")
    # Narrate outputs as the narrate stage writes them: every test window predicted (ordered by
    # frame, then repeat), every other one narrated; good predictions and mostly right sentences.
    test = split.test[np.lexsort((split.test[:, 0], split.test[:, 1]))]
    noise = rng.normal(scale=0.3, size=(len(test), *targets.patches.shape[1:]))
    predictions = (np.asarray(targets.patches[test[:, 1]], dtype=np.float32) * (1 + noise)).astype(np.float16)
    rows = np.arange(0, len(test), 2)
    frames = test[rows, 1]
    right = rng.random(len(rows)) < 0.8
    narrations = [TOPICS[f // FRAMES_PER_SHOT][0] if ok else TOPICS[(f // FRAMES_PER_SHOT + 3) % 6][0]
                  for f, ok in zip(frames, right)]
    synthetic = NarratorInfo("synthetic", "planted sentences", is_stand_in=True)
    write_narrated(
        run, Predictions(predictions, test, checkpoint="synthetic", space_id=targets.info.space_id),
        Narrations(windows=rows, pairs=test[rows], sentences=tuple(narrations),
                   references=tuple(TOPICS[f // FRAMES_PER_SHOT] for f in frames),
                   retrieved_frame=np.full(len(rows), -1), copied=np.zeros(len(rows), bool),
                   narrator=synthetic, captioner=synthetic),
        summary={})
    return run, config, targets


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    return build_run(tmp_path_factory.mktemp("evaluate"))


def test_evaluate_writes_scores_summary_and_table(synthetic_run):
    run, config, _ = synthetic_run
    result = run_stage("evaluate", run, config)
    per_window = pd.read_parquet(run.stage_dir("evaluate") / "per_window.parquet")
    summary = json.loads((run.stage_dir("evaluate") / "summary.json").read_text())
    narrations = pd.read_parquet(run.stage_dir("narrate") / "narrations.parquet")
    assert len(per_window) == len(narrations) == len(np.load(run.stage_dir("narrate") / "predictions.npy")) // 2
    assert (per_window[["repeat", "frame"]].to_numpy() == narrations[["repeat", "frame"]].to_numpy()).all()
    for col in ("matched", "matched_max", "shuffled", "word_salad", "random_caption", "rank", "retrieved_frame",
                "released_matched", "released_floor", "copied"):
        assert col in per_window
    scores = summary["scores"]
    assert scores["matched"]["mean"] > scores["shuffled"]["mean"] > scores["word_salad"]["mean"]
    test = summary["tests"]["matched_vs_word_salad"]
    assert test["level"] == "block" and test["mean_difference"] > 0
    assert summary["blocks"].startswith("blocks = contiguous 1 s")  # an Allen-style movie has no shot table
    r10 = summary["embedding"]["r10"]
    assert r10["value"] > 5 * r10["chance"] and r10["ci"]["low"] > r10["chance"]
    assert summary["embedding"]["cka"]["chance"] > 0  # computed by permutation, never typed
    assert 0 <= summary["copy_rate"] <= 1 and summary["split"]["overlap"] == 0.0
    controls = summary["controls"]
    assert {"shuffled_labels", "mean_patch"} <= controls.keys()
    assert controls["shuffled_labels"]["matched_mean"] < controls["shuffled_labels"]["real_matched_mean"]
    assert any("time_shifted" in s for s in controls["skipped"])  # no trained encoder in this run
    assert "Sentence scores" in result.table and "Controls" in result.table


def test_evaluate_refuses_mismatched_predictions_without_partial_output(tmp_path):
    run, config, _ = build_run(tmp_path)
    preds = np.load(run.stage_dir("narrate") / "predictions.npy")
    np.save(run.stage_dir("narrate") / "predictions.npy", preds[:-3])
    with pytest.raises(InputError, match="predictions.npy"):
        run_stage("evaluate", run, config)
    assert not (run.stage_dir("evaluate") / "summary.json").exists()
    assert not (run.stage_dir("evaluate") / "per_window.parquet").exists()
    (run.stage_dir("narrate") / "narrations.parquet").unlink()
    with pytest.raises(StageUnavailableError, match="narrate"):
        run_stage("evaluate", run, config)


SMALL_BENCHMARK = {"quick": True, "max_test_windows_quick": 40, "cebra_batch_size": 64, "cebra_hidden": 16,
                   "target_components": 16, "pca_components": 8, "mlp_hidden": 32, "n_permutations": 100,
                   "quick_budget": {"max_steps": 20, "validate_every": 10, "patience": 2, "batch_size": 32,
                                    "max_val_windows": 64}}


@pytest.mark.slow
def test_benchmark_runs_every_method_on_every_regime(tmp_path):
    from neurrator.evaluate.results import BenchmarkTable

    run, config, _ = build_run(tmp_path, config_overrides={
        "evaluate": {"benchmark": SMALL_BENCHMARK, "n_bootstrap": 200},
        "encoder": {"progress": False}})
    result = run_stage("benchmark", run, config)
    table = BenchmarkTable.load(run.stage_dir("benchmark"))
    assert list(table.regimes) == ["contiguous_middle", "front_only", "sparse_random"]  # the active split last
    expected = {"Neurrator (encoder)", "Ridge", "MLP-Patches", "PCA + kNN", "CEBRA-512 + kNN"}
    for name in table.regimes:
        # The CEBRA dimension sweep runs on the active split (sparse_random here) only.
        extra = {"CEBRA-128 + kNN", "CEBRA-256 + kNN"} if name == "sparse_random" else set()
        assert set(table.methods(name)) == expected | extra
    for row in table.rows:  # one budget: every iterative method stopped within the same step cap
        if row.iterative:
            assert 0 < row.fit.steps <= 20 and row.fit.stop_reason in ("max_steps", "early_stopping")
        else:
            assert row.fit.steps == 0 and row.fit.stop_reason == "closed_form"
        assert row.fit.cpu_seconds > 0
    md = (run.stage_dir("benchmark") / "tables.md").read_text()
    for title in ("Table A1 (headline", "Table A1 (released", "Table A2", "Table A3", "Within-shot", "Zero-shot"):
        assert title in md and title in result.table
    assert md.count("[quick]") >= 6  # every table says quick
    assert "0.426" not in md  # the paper's sparse_random number sits only beside the paper's leaky regime
    assert "0.11%" in md  # paper A3 chance from evaluate.paper


def test_benchmark_quick_feature_baselines(tmp_path):
    from neurrator.evaluate.results import BenchmarkTable

    small = {**SMALL_BENCHMARK, "methods": ["ridge", "pca_knn"], "active_only_methods": [],
             "regimes": ["front_only", "no_such_regime"]}
    run, config, _ = build_run(tmp_path, config_overrides={"evaluate": {"benchmark": small, "n_bootstrap": 200}})
    result = run_stage("benchmark", run, config)
    table = BenchmarkTable.load(run.stage_dir("benchmark"))
    assert set(table.regimes) == {"front_only", "sparse_random"}  # the regime + the active split
    assert table.context["missing_regimes"] == ["no_such_regime"]
    front = table.regimes["front_only"]
    assert front.n_test_windows == 40 and front.leakage["overlap"] == 0.0 and front.holds_out_frames
    ridge = table.row("sparse_random", "Ridge").metrics
    assert ridge["cka"].value > ridge["cka"].chance and ridge["r10"].value >= ridge["r10"].chance
    knn = table.row("front_only", "PCA + kNN").metrics
    assert not knn["zero_shot_r1"].applicable  # kNN can only answer with training frames
    assert table.row("front_only", "Ridge").metrics["zero_shot_r1"].applicable
    assert "no_such_regime" in result.summary


@pytest.mark.slow
def test_encoder_controls_lose_to_the_real_windows(tmp_path):
    """The encoder's real predictions, narrated, beat every control on the same windows."""
    from neurrator.encoder import Neurrator
    from neurrator.preprocess.io import load_dataset, load_split

    run, config, _ = build_run(tmp_path)
    dataset = load_dataset(run.stage_dir("ingest") / "dataset")
    split = load_split(run.stage_dir("ingest") / "split.json")
    encoder = Neurrator(seed=0, windows_per_epoch=512, batch_size=32, max_epochs=6, progress=False).fit(
        dataset, read_targets(run), split)
    encoder.save(run.stage_dir("train"))
    # The real predictions are the encoder's own, so real and controls differ only in their input.
    windows = np.load(run.stage_dir("narrate") / "windows.npy")
    np.save(run.stage_dir("narrate") / "predictions.npy", encoder.predict(dataset, windows).numpy().astype(np.float16))
    run_stage("evaluate", run, config)
    controls = json.loads((run.stage_dir("evaluate") / "summary.json").read_text())["controls"]
    assert {"time_shifted", "hippocampus", "mean_patch", "shuffled_labels"} <= controls.keys()
    assert controls["hippocampus"]["n_units"] == 8
    assert controls["time_shifted"]["shift_frames"] == 60  # 10 s capped at half the 120-frame movie
    for name in ("time_shifted", "hippocampus", "mean_patch", "shuffled_labels"):
        c = controls[name]
        assert c["n_windows"] == 24
        assert c["real_matched_mean"] > c["matched_mean"] + 0.05, (name, c)  # actually compared
    for name in ("time_shifted", "hippocampus", "mean_patch"):
        assert controls[name]["narrator"] == "retrieval"
