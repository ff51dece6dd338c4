"""``neurrator evaluate``: score the narrations and the predicted patches, with controls.

Reads ``narrate/narrations.parquet`` and ``narrate/predictions.npy`` (one row per test window,
same order), the stimulus and its reference captions (``ingest/stimulus.json``), the patch
targets (``embed/targets.json``) and, for the controls, the dataset, the split and the trained
encoder. Writes:

- ``evaluate/per_window.parquet``: one row per test window: ``repeat``, ``frame``,
  ``narration``, the SBERT scores (``matched`` is the headline), the floors' draws, and the
  retrieval ``rank`` / ``retrieved_frame`` of the window's predicted patches;
- ``evaluate/summary.json``: means ± std, block-bootstrap CIs, block-level Wilcoxon tests
  (Holm-corrected), the released-script compatible scores and the copy rate, embedding metrics
  with computed chance levels (the benchmark's readout), controls, stand-ins.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.core.linalg import mean_patch
from neurrator.core.threads import thread_limit
from neurrator.data import load_stimulus_record
from neurrator.data.types import Stimulus
from neurrator.evaluate.benchmark import BenchmarkSettings, EmbeddingContext, embedding_metrics
from neurrator.evaluate.controls import ControlInputs, evenly_spaced, run_controls
from neurrator.evaluate.sbert import build_scorer
from neurrator.evaluate.scores import (
    ReferenceBank,
    copy_flags,
    load_released_pool,
    load_word_salad,
    released_scores,
    score_windows,
    summarize_scores,
)
from neurrator.evaluate.stats import block_ids
from neurrator.evaluate.tables import render_evaluation
from neurrator.preprocess.io import load_dataset, load_split
from neurrator.preprocess.types import Split
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.stages.embed import read_targets
from neurrator.vision.base import PatchTargets

NARRATION_COLUMNS = ("repeat", "frame", "narration")


# ---- inputs shared with the benchmark stage ---------------------------------------------------


def build_narrator(config: RunConfig, name: str | None, targets: PatchTargets, captions: dict[int, list[str]],
                   train_frames: np.ndarray):
    """Narrator ``name`` (``None``: the run's) over a caption bank of ``train_frames`` only."""
    from neurrator.narrate import NARRATORS, CaptionBank

    narrate_config = config.narrate if name is None else config.narrate.model_copy(update={"narrator": name})
    bank = CaptionBank.from_training_frames(targets.patches, captions, train_frames, strict=narrate_config.strict_bank)
    if narrate_config.caption_bank_json is not None:
        bank = bank.concat(CaptionBank.from_json(narrate_config.caption_bank_json, space_id=targets.info.space_id))
    return NARRATORS.create(narrate_config.narrator, config=narrate_config, bank=bank)


def run_captions(run: RunDir, stimulus: Stimulus) -> dict[int, list[str]]:
    """Reference captions of the run: the stimulus's, overridden by the narrate stage's captioner output."""
    path = run.stage_dir("narrate") / "narrations.parquet"
    if path.is_file():
        return merged_captions(stimulus, pd.read_parquet(path), path)
    captions = {int(f): list(c) for f, c in stimulus.captions.items() if c}
    if not captions:
        raise InputError(run.stage_dir("ingest") / "stimulus.json", "the stimulus has no reference captions")
    return captions


def stand_ins(run: RunDir) -> dict[str, str]:
    """Components of this run that are offline stand-ins (from the manifest)."""
    return dict(run.manifest().get("stand_ins", {}))


# ---- the stage ---------------------------------------------------------------------------------


def _read_narrations(run: RunDir) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, Path]:
    """Narrations (one row per narrated window), all predictions, and each prediction's frame.

    ``predictions.npy`` holds every test window; the narrations may be a subset, linked by
    their ``window`` column (row of ``predictions.npy``), or else row by row.
    """
    path = run.require("narrate", "narrations.parquet")
    try:
        table = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001  (pyarrow raises several unrelated types for a damaged file)
        raise InputError(path, f"not a readable parquet table: {exc}") from None
    missing = [c for c in NARRATION_COLUMNS if c not in table]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    table = table.reset_index(drop=True)
    pred_path = run.require("narrate", "predictions.npy")
    try:
        predictions = np.load(pred_path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(pred_path, f"not a readable .npy array: {exc}") from None
    if "window" not in table:
        table["window"] = np.arange(len(table))
    rows = table["window"].to_numpy(dtype=np.int64)
    if predictions.ndim != 3 or len(rows) == 0 or rows.min() < 0 or rows.max() >= len(predictions):
        raise InputError(pred_path, f"expected (n_windows, n_patches, dim) predictions covering the narrated rows "
                                    f"(max row {rows.max() if len(rows) else '—'}), found shape {predictions.shape}")
    windows_path = run.stage_dir("narrate") / "windows.npy"
    if windows_path.is_file():
        windows = np.load(windows_path, allow_pickle=False)
        if windows.shape != (len(predictions), 2):
            raise InputError(windows_path, f"expected ({len(predictions)}, 2) (repeat, frame) rows, found {windows.shape}")
        if not np.array_equal(windows[rows], table[["repeat", "frame"]].to_numpy(dtype=np.int64)):
            raise InputError(path, "narrated (repeat, frame) pairs disagree with windows.npy")
        prediction_frames = windows[:, 1].astype(np.int64)
    elif len(predictions) == len(table):
        prediction_frames = table["frame"].to_numpy(dtype=np.int64)
    else:
        raise InputError(pred_path, f"{len(predictions)} predictions for {len(table)} narrations and no windows.npy "
                                    "saying which frame each prediction is")
    return table, predictions, prediction_frames, path


def merged_captions(stimulus: Stimulus, narrations: pd.DataFrame, path: Path) -> dict[int, list[str]]:
    """Reference captions per frame: the stimulus's, overridden by the narrate stage's captioner
    output (``references`` column) for the frames it captioned."""
    captions = {int(f): list(c) for f, c in stimulus.captions.items() if c}
    if "references" in narrations:
        for frame, refs in zip(narrations["frame"], narrations["references"], strict=True):
            refs = [str(r) for r in (refs if refs is not None else []) if str(r).strip()]
            if refs:
                captions[int(frame)] = refs
    if not captions:
        raise InputError(path, f"no reference captions for {stimulus.name!r}: neither the stimulus nor the narrate "
                               "stage's captioner provided any")
    return captions


def run(run: RunDir, config: RunConfig) -> StageResult:
    with thread_limit(config.evaluate.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    ec = config.evaluate
    seed = config.seed + ec.seed
    narrations, predictions, prediction_frames, narrations_path = _read_narrations(run)
    stimulus = load_stimulus_record(run.require("ingest", "stimulus.json"))
    captions = merged_captions(stimulus, narrations, narrations_path)
    targets = read_targets(run)
    if predictions.shape[1:] != targets.patches.shape[1:]:
        raise InputError(run.stage_dir("narrate") / "predictions.npy",
                         f"predictions are {predictions.shape[1:]} per window, targets {targets.patches.shape[1:]}")
    frames = narrations["frame"].to_numpy(dtype=np.int64)
    if min(frames.min(), prediction_frames.min()) < 0 or max(frames.max(), prediction_frames.max()) >= targets.n_frames:
        raise InputError(narrations_path, f"frame indices outside the stimulus's {targets.n_frames} frames")
    uncaptioned = sorted(set(frames.tolist()) - set(captions))
    if uncaptioned:
        raise InputError(narrations_path, f"{len(uncaptioned)} narrated frames have no reference caption, "
                                          f"e.g. {uncaptioned[:5]}")
    split = load_split(run.require("ingest", "split.json"))

    t0 = time.perf_counter()
    scorer = build_scorer(ec)
    bank = ReferenceBank(captions, scorer)
    word_salad = load_word_salad(ec.word_salad_path)
    shots = stimulus.shot_of_frame
    sentences = narrations["narration"].astype(str).tolist()
    per_window = score_windows(sentences, frames, bank, scorer, word_salad=word_salad, shot_of_frame=shots, seed=seed)
    per_window.insert(0, "repeat", narrations["repeat"].to_numpy(dtype=np.int64))
    released = released_scores(sentences, frames, captions, scorer, load_released_pool(), seed=seed)
    for key, values in released.items():
        per_window[f"released_{key}"] = values.astype(np.float32)
    per_window["copied"] = copy_flags(sentences, frames, captions)
    summary = summarize_scores(per_window, shot_of_frame=shots, frame_rate=stimulus.frame_rate,
                               n_bootstrap=ec.n_bootstrap, ci_level=ec.ci_level, seed=seed)
    summary["copy_rate"] = float(per_window["copied"].mean())
    summary["released"] = {k: float(np.mean(v)) for k, v in released.items()}

    # Embedding metrics use every predicted test window, narrated or not; one readout (headline:
    # centred full patch tensors) as in the benchmark.
    settings = BenchmarkSettings(n_bootstrap=ec.n_bootstrap, ci_level=ec.ci_level, knn_k=ec.knn_k,
                                 tolerance_s=ec.frame_id_tolerance_s, seed=seed)
    context = EmbeddingContext.build(targets.patches, prediction_frames, split.train_frames, shot_of_frame=shots,
                                     frame_rate=stimulus.frame_rate, settings=settings)
    metrics, ident = embedding_metrics(predictions, context, settings)
    narrated_rows = narrations["window"].to_numpy(dtype=np.int64)
    per_window["window"] = narrated_rows
    per_window["rank"] = ident.rank[narrated_rows]
    per_window["retrieved_frame"] = ident.retrieved[narrated_rows]
    summary["embedding"] = {k: m.to_dict() for k, m in {**metrics, **context.shot_oracle()}.items()}
    summary["scoring_seconds"] = round(time.perf_counter() - t0, 2)
    summary["split"] = {"name": split.name, "description": split.description, **split.leakage()}
    summary["narrator"] = sorted(narrations["narrator"].astype(str).unique()) if "narrator" in narrations else None
    summary["scorer"] = {"name": ec.scorer, "model": ec.scorer_model}
    summary["stand_ins"] = stand_ins(run)

    if ec.controls:
        t1 = time.perf_counter()
        summary["controls"] = run_controls(_control_inputs(run, config, narrations, predictions, split, stimulus,
                                                           captions, targets, bank, scorer, word_salad, seed))
        summary["controls_seconds"] = round(time.perf_counter() - t1, 2)
    else:
        summary["controls"] = {"skipped": ["controls off (evaluate.controls=false)"]}

    out = run.stage_dir("evaluate")
    with atomic_path(out / "per_window.parquet") as tmp:
        per_window.to_parquet(tmp, index=False)
    atomic_write_json(out / "summary.json", summary)
    s = summary["scores"]["matched"]
    r10 = metrics["r10"]
    return StageResult(
        summary=(f"{len(per_window)} windows / {summary['n_frames']} frames: SBERT matched {s['mean']:.3f} "
                 f"[{s['ci_low']:.3f}, {s['ci_high']:.3f}]; R@10 {r10.value:.1%} (chance {r10.chance:.1%}); "
                 f"copy rate {summary['copy_rate']:.1%}"),
        outputs=[str(out / "per_window.parquet"), str(out / "summary.json")],
        table=render_evaluation(summary, paper_regime=split.name),
    )


def _control_inputs(run, config, narrations, predictions, split: Split, stimulus: Stimulus, captions, targets,
                    bank: ReferenceBank, scorer, word_salad, seed) -> ControlInputs:
    """The controls' inputs: an evenly spaced subset of the narrated windows, the controls'
    narrator over a training-frame caption bank, the trained encoder if there is one."""
    ec = config.evaluate
    rows = evenly_spaced(len(narrations), ec.controls_max_windows)
    pairs = narrations[["repeat", "frame"]].to_numpy(dtype=np.int64)[rows]
    shots, frame_rate = stimulus.shot_of_frame, stimulus.frame_rate
    settings = BenchmarkSettings(n_bootstrap=ec.n_bootstrap, ci_level=ec.ci_level, knn_k=ec.knn_k,
                                 tolerance_s=ec.frame_id_tolerance_s, seed=seed, n_permutations=100)

    def embed(patches: np.ndarray, true_frames: np.ndarray) -> dict:
        ctx = EmbeddingContext.build(targets.patches, true_frames, split.train_frames, shot_of_frame=shots,
                                     frame_rate=frame_rate, settings=settings)
        m, _ = embedding_metrics(np.asarray(patches, dtype=np.float32), ctx, settings)
        return {"r1": m["r1"].value, "r10": m["r10"].value, "median_rank": m["median_rank"].value}

    skipped, narrate, name = [], None, ec.controls_narrator or config.narrate.narrator
    try:
        narrator = build_narrator(config, ec.controls_narrator, targets, captions, split.train_frames)
        narrate, name = narrator.narrate, getattr(narrator, "name", name)
    except (ValueError, InputError) as exc:
        skipped.append(f"narrator-based controls ({exc})")
    run_narrators = set(narrations["narrator"].astype(str)) if "narrator" in narrations else set()
    predict, mask = None, None
    if (run.stage_dir("train") / "checkpoint.safetensors").is_file():
        from neurrator.encoder import Neurrator
        from neurrator.preprocess.subsets import subset_mask

        dataset = load_dataset(run.require("ingest", "dataset"))
        encoder = Neurrator.load(run.stage_dir("train"), expect_units=dataset.unit_ids)
        predict = lambda p, units: encoder.predict(dataset, p, units=units)
        try:
            mask = subset_mask(dataset.units, ec.control_subset)
        except InputError:
            mask = None
    shift = targets.n_frames // 2  # at most half the stimulus: the circular shift never lands near the true frame
    if frame_rate:
        shift = max(1, min(round(ec.control_shift_s * frame_rate), shift))
    return ControlInputs(
        pairs=pairs, real_sentences=narrations["narration"].astype(str).to_numpy()[rows].tolist(),
        real_patches=np.asarray(predictions[narrations["window"].to_numpy()[rows]], dtype=np.float32),
        blocks=block_ids(pairs[:, 1], shot_of_frame=shots, frame_rate=frame_rate), n_frames=targets.n_frames,
        shift_frames=shift, mean_patch=mean_patch(targets.patches, split.train_frames), narrate=narrate,
        narrator_name=name, renarrate_real=run_narrators != {name},
        score=lambda s, f: score_windows(s, f, bank, scorer, word_salad=word_salad, shot_of_frame=shots, seed=seed),
        embed=embed, predict=predict, unit_mask=mask, unit_subset=ec.control_subset, seed=seed,
        n_bootstrap=ec.n_bootstrap, ci_level=ec.ci_level, skipped=skipped,
    )
