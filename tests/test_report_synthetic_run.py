"""A small synthetic run directory for the report tests, following docs/architecture.md.

``write_synthetic_run(root, parts=...)`` writes plausible artifacts of the chosen stages
(random numbers, tiny sizes) so the report can be rendered without running the pipeline.
Other report test modules import it; the tests here check the fixture itself keeps to the
contract the report stage reads.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from neurrator.config import RunConfig
from neurrator.preprocess.io import load_dataset, save_dataset
from neurrator.preprocess.types import NeuralDataset, ZScoreStats
from neurrator.rundir import RunDir

ALL_PARTS = ("ingest", "train", "narrate", "evaluate", "benchmark", "analyze")
N_REPEATS, N_FRAMES, N_UNITS, BINS_PER_FRAME, WINDOW = 3, 40, 24, 4, 20
TEST_REPEAT = N_REPEATS - 1
AREAS = ("LGd", "VISp", "VISl", "CA1")


def synthetic_frames(n_frames: int = N_FRAMES, height: int = 48, width: int = 96) -> np.ndarray:
    """(n_frames, height, width) uint8: a drifting grating, so each frame differs."""
    y, x = np.mgrid[0:height, 0:width]
    phase = np.arange(n_frames)[:, None, None] * 0.4
    return (127.5 + 120 * np.sin(x[None] / 6.0 + y[None] / 11.0 + phase)).astype(np.uint8)


def _png(title: str, seed: int) -> bytes:
    fig = Figure(figsize=(4, 3))
    ax = fig.subplots()
    rng = np.random.default_rng(seed)
    ax.plot(np.cumsum(rng.normal(size=30)))
    ax.set_title(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=60)
    return buf.getvalue()


def _dataset(rng: np.random.Generator, n_repeats: int, n_frames: int, n_units: int) -> NeuralDataset:
    pad = WINDOW
    n_time = n_frames * BINS_PER_FRAME + 2 * pad
    units = pd.DataFrame(
        {
            "area": [AREAS[i % len(AREAS)] for i in range(n_units)],
            "probe": ["probeA"] * n_units,
            "depth": rng.uniform(0, 3000, n_units),
            "cell_type": [None] * n_units,
        },
        index=pd.Index(np.arange(1000, 1000 + n_units, dtype=np.int64), name="unit_id"),
    )
    responses = rng.normal(size=(n_repeats, n_time, n_units)).astype(np.float32)
    responses[:, :pad] = 0
    responses[:, -pad:] = 0
    return NeuralDataset(
        stimulus="natural_movie_one",
        responses=responses,
        bins_per_frame=BINS_PER_FRAME,
        window=WINDOW,
        pad=pad,
        units=units,
        zscore=ZScoreStats(mean=np.zeros(n_units, np.float32), std=np.ones(n_units, np.float32)),
        n_frames=n_frames,
    )


def write_synthetic_run(
    root: str | Path,
    parts: tuple[str, ...] = ALL_PARTS,
    *,
    narration: str | None = None,
    stand_ins: dict[str, str] | None = None,
    seed: int = 0,
    n_frames: int = N_FRAMES,
    n_units: int = N_UNITS,
    n_repeats: int = N_REPEATS,
) -> RunDir:
    """Write a synthetic run holding the artifacts of ``parts`` (stage names).

    ``narration``, if given, replaces the first test window's decoded sentence (for escaping
    tests). ``stand_ins`` defaults to the offline demo's stand-ins. The last repeat is the
    test repeat.
    """
    rng = np.random.default_rng(seed)
    run = RunDir.create(root, RunConfig(name="synthetic", seed=seed))
    stand_ins = {
        "vision_space": "oriented-energy stand-in space (not CLIP ViT-L/14-336)",
        "narrator": "retrieval over training captions (not LLaVA-1.5)",
    } if stand_ins is None else stand_ins
    for component, description in stand_ins.items():
        run.mark_stand_in(component, description)

    frames = np.arange(n_frames)
    test_pairs = np.stack([np.full(n_frames, n_repeats - 1), frames], axis=1)
    sentences = [f"a grey grating drifting to the left, frame {f}" for f in frames]
    if narration is not None:
        sentences[0] = narration
    references = [f"a striped pattern moving sideways (frame {f})" for f in frames]
    matched = rng.uniform(0.2, 0.7, n_frames)

    if "ingest" in parts:
        save_dataset(_dataset(rng, n_repeats, n_frames, n_units), run.stage_dir("ingest") / "dataset")
        # Tests monkeypatch neurrator.data.load_stimulus_record to return synthetic_frames().
        record = {"name": "natural_movie_one", "source": "synthetic test frames", "n_frames": n_frames}
        (run.stage_dir("ingest") / "stimulus.json").write_text(json.dumps(record))
    if "train" in parts:
        train = run.stage_dir("train")
        train.mkdir(parents=True, exist_ok=True)
        meta = {"kind": "patches", "unit_ids": list(range(1000, 1000 + n_units - 4)),  # all but the last 4 units
                "seed": seed, "split": {"name": "repeats"}, "metrics": {"best_epoch": 3, "best_metric": 0.42}}
        (train / "checkpoint.json").write_text(json.dumps(meta))
        pd.DataFrame({"epoch": [1, 2, 3, 4], "train_loss": [1.0, 0.7, 0.6, 0.58],
                      "val_metric": [0.2, 0.35, 0.42, 0.41]}).to_csv(train / "log.csv", index=False)
    if "narrate" in parts:
        run.stage_dir("narrate").mkdir(parents=True, exist_ok=True)
        # Columns of the narrate stage (neurrator.stages.narrate).
        pd.DataFrame(
            {"window": np.arange(n_frames), "repeat": test_pairs[:, 0], "frame": test_pairs[:, 1],
             "narration": sentences, "narrator": "retrieval", "is_stand_in": True,
             "references": [[r] for r in references]}
        ).to_parquet(run.stage_dir("narrate") / "narrations.parquet")
        (run.stage_dir("narrate") / "summary.json").write_text(json.dumps({"narrator": "retrieval", "n_windows": n_frames}))
    if "evaluate" in parts:
        run.stage_dir("evaluate").mkdir(parents=True, exist_ok=True)
        # Columns of neurrator.evaluate.scores.score_windows, plus the window's repeat and row.
        pd.DataFrame(
            {
                "window": np.arange(n_frames),
                "repeat": test_pairs[:, 0],
                "frame": test_pairs[:, 1],
                "narration": sentences,
                "matched": matched,
                "matched_max": matched + 0.05,
                "shuffled": rng.uniform(0.0, 0.3, n_frames),
                "word_salad": rng.uniform(-0.05, 0.1, n_frames),
                "random_caption": rng.uniform(0.0, 0.2, n_frames),
            }
        ).to_parquet(run.stage_dir("evaluate") / "per_window.parquet")
        summary = {
            "n_windows": n_frames,
            "headline": "matched",
            "scores": {"matched": {"mean": float(matched.mean()), "std": float(matched.std()),
                                   "ci_low": 0.4, "ci_high": 0.5}},
            "tests": {"matched_vs_shuffled": {"window": {"statistic": 812.0, "p": 3.1e-8}}},
            "embedding": {"cka": 0.61, "r_at_1": 0.05, "r_at_10": 0.3, "median_rank": 14},
        }
        (run.stage_dir("evaluate") / "summary.json").write_text(json.dumps(summary))
    if "benchmark" in parts:
        run.stage_dir("benchmark").mkdir(parents=True, exist_ok=True)
        tables = {
            "A1": {"neurrator": {"sparse_random": 0.41, "front_only": 0.17},
                   "ridge": {"sparse_random": 0.06, "front_only": 0.05}},
            "A3": [{"method": "ridge", "r_at_1": 0.007}, {"method": "chance", "r_at_1": 0.0011}],
        }
        (run.stage_dir("benchmark") / "tables.json").write_text(json.dumps(tables))
    if "analyze" in parts:
        for i, name in enumerate(("scaling", "sae")):
            folder = run.stage_dir("analyze") / name
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}_figure.png").write_bytes(_png(f"{name} figure", seed + i))
            (folder / "summary.json").write_text(json.dumps({"analysis": name, "crossing_n": {"V1": 30, "LGd": None}}))
        (run.stage_dir("analyze") / "sae" / "features.json").write_text(
            json.dumps([{"feature": k, "label": f"feature {k}", "mean_activation": 0.1 * k} for k in range(5)])
        )
    for stage in ("simulate", *parts):
        run.update_manifest(stages={stage: {"status": "done", "seconds": 1.5}})
    return run


def test_synthetic_run_keeps_to_the_contract(tmp_path):
    run = write_synthetic_run(tmp_path / "run")
    ds = load_dataset(run.stage_dir("ingest") / "dataset")
    assert ds.responses.shape == (N_REPEATS, N_FRAMES * BINS_PER_FRAME + 2 * WINDOW, N_UNITS)
    for rel in ("narrate/narrations.parquet", "evaluate/per_window.parquet", "evaluate/summary.json",
                "benchmark/tables.json", "analyze/scaling/scaling_figure.png", "train/checkpoint.json"):
        assert (run.root / rel).is_file(), rel
    assert set(run.manifest()["stand_ins"]) == {"vision_space", "narrator"}
