"""``neurrator evaluate``: score the narrations and the predicted patches, with controls.

Reads ``narrate/narrations.parquet`` and ``narrate/predictions.npy`` (one row per test window,
same order), the stimulus and its reference captions (``ingest/stimulus.json``), the patch
targets (``embed/targets.json``) and, for the controls, the dataset, the split and the trained
encoder. Writes:

- ``evaluate/per_window.parquet``: one row per test window: ``repeat``, ``frame``,
  ``narration``, the SBERT scores (``matched`` is the headline), the floors' draws, and the
  retrieval ``rank`` / ``retrieved_frame`` of the window's predicted patches;
- ``evaluate/summary.json``: means ± std, frame-resampled bootstrap CIs, Wilcoxon tests at
  window / frame / shot level, embedding metrics with chance levels, controls, stand-ins.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.core.sampling import evenly_spaced
from neurrator.core.threads import thread_limit
from neurrator.data.types import Stimulus
from neurrator.evaluate import build_scorer
from neurrator.evaluate.controls import (
    compare_control,
    mean_training_patch,
    shuffled_labels,
    time_shifted_pairs,
)
from neurrator.evaluate.embedding import embedding_metrics, pool_patches
from neurrator.evaluate.scores import (
    SCORE_COLUMNS,
    ReferenceBank,
    load_word_salad,
    score_windows,
    summarize_scores,
)
from neurrator.evaluate.tables import PAPER_A1, fmt, markdown_table, stand_in_note
from neurrator.narrate import build_caption_bank, build_narrator
from neurrator.narrate.narrations import Narrations
from neurrator.preprocess.types import Split
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.vision.base import PatchTargets

# ---- the stage ---------------------------------------------------------------------------------


def run(run: RunDir, config: RunConfig) -> StageResult:
    with thread_limit(config.evaluate.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    ec = config.evaluate
    seed = config.seed + ec.seed
    targets = runio.read_targets(run)
    predictions, narrations = runio.read_narrated(run, targets)
    narrations_path = run.stage_dir("narrate") / "narrations.parquet"
    prediction_frames = predictions.frames
    stimulus = runio.read_stimulus(run)
    captions = runio.read_references(run, stimulus)
    frames = narrations.frames
    uncaptioned = sorted(set(frames.tolist()) - set(captions))
    if uncaptioned:
        raise InputError(narrations_path, f"{len(uncaptioned)} narrated frames have no reference caption, "
                                          f"e.g. {uncaptioned[:5]}")

    t0 = time.perf_counter()
    scorer = build_scorer(ec)
    bank = ReferenceBank(captions, scorer)
    word_salad = load_word_salad(ec.word_salad_path)
    shots = stimulus.shot_of_frame
    per_window = score_windows(list(narrations.sentences), frames, bank, scorer,
                               word_salad=word_salad, shot_of_frame=shots, seed=seed)
    per_window.insert(0, "repeat", narrations.pairs[:, 0])
    summary = summarize_scores(per_window, shot_of_frame=shots, n_bootstrap=ec.n_bootstrap,
                               ci_level=ec.ci_level, seed=seed)

    frame_targets = pool_patches(targets.patches)
    # Embedding metrics use every predicted test window, narrated or not.
    predicted_all = pool_patches(predictions.patches)
    metrics = embedding_metrics(predicted_all, prediction_frames, frame_targets, frame_rate=stimulus.frame_rate,
                                tolerance_s=ec.frame_id_tolerance_s, knn_k=ec.knn_k, center=ec.center_retrieval)
    narrated_rows = narrations.windows
    predicted = predicted_all[narrated_rows]
    per_window["window"] = narrated_rows
    per_window["rank"] = metrics.pop("ranks")[narrated_rows]
    per_window["retrieved_frame"] = metrics.pop("retrieved")[narrated_rows]
    summary["embedding"] = metrics
    summary["embedding"]["representation"] = "patches averaged over the grid (pooled), cosine"
    summary["embedding"]["knn_purity_definition"] = (
        "fraction of each window's k nearest test windows (predicted space) that are also among its k "
        "nearest in true-target space")
    summary["scoring_seconds"] = round(time.perf_counter() - t0, 2)

    split = runio.read_split(run)
    summary["split"] = {"name": split.name, "description": split.description}
    summary["narrator"] = [narrations.narrator.name]
    summary["scorer"] = {"name": ec.scorer, "model": ec.scorer_model}
    summary["stand_ins"] = runio.stand_ins(run)
    summary["paper_reference"] = _paper_reference(split.name)

    control_note = None
    if ec.controls:
        t1 = time.perf_counter()
        summary["controls"], control_note = _run_controls(run, config, narrations, predictions, predicted, per_window, split,
                                                          stimulus, captions, targets, bank, scorer, word_salad,
                                                          frame_targets, seed)
        summary["controls_seconds"] = round(time.perf_counter() - t1, 2)
    else:
        summary["controls"] = {}
        control_note = "controls off (evaluate.controls=false)"

    out = run.stage_dir("evaluate")
    with atomic_path(out / "per_window.parquet") as tmp:
        per_window.to_parquet(tmp, index=False)
    atomic_write_json(out / "summary.json", summary)
    s = summary["scores"]["matched"]
    floor = summary["scores"]["word_salad"]["mean"]
    return StageResult(
        summary=(f"{len(per_window)} windows / {summary['n_frames']} frames: SBERT matched "
                 f"{s['mean']:.3f} ± {s['std']:.3f} (word-salad floor {floor:.3f}); "
                 f"R@10 {metrics['r10']:.1%} (chance {metrics['r10_chance']:.1%})"
                 + (f"; {control_note}" if control_note else "")),
        outputs=[str(out / "per_window.parquet"), str(out / "summary.json")],
        table=summary_table(summary),
    )


def _paper_reference(split_name: str) -> dict:
    regime = {k: v.get(split_name) for k, v in PAPER_A1.items()}
    return {"table": "A1", "regime": split_name, "sbert": regime} if regime["Neurrator"] is not None else {}


# ---- controls ----------------------------------------------------------------------------------


def _run_controls(run, config, narrations: Narrations, predictions, predicted, per_window, split: Split, stimulus: Stimulus,
                  captions, targets: PatchTargets, bank: ReferenceBank, scorer, word_salad, frame_targets, seed):
    """Every control on the same evenly spaced subset of test windows.

    Each control is compared with the real predictions of the same windows narrated by the
    same narrator: if the controls' narrator is not the run's, the real predictions are
    narrated again with it, so the comparison is not confounded by the narrator.
    """
    ec = config.evaluate
    rows = evenly_spaced(len(per_window), ec.controls_max_windows)
    pairs = narrations.pairs[rows]
    frames = pairs[:, 1]
    real = per_window.iloc[rows].reset_index(drop=True)
    common = {"word_salad": word_salad, "shot_of_frame": stimulus.shot_of_frame, "seed": seed}
    metric_args = {"frame_rate": stimulus.frame_rate, "tolerance_s": ec.frame_id_tolerance_s, "knn_k": ec.knn_k,
                       "center": ec.center_retrieval}
    stat_args = {"n_bootstrap": ec.n_bootstrap, "ci_level": ec.ci_level, "seed": seed}
    results: dict[str, dict] = {}
    skipped: list[str] = []

    def record(name: str, sentences: list[str], score_frames: np.ndarray, pooled: np.ndarray | None,
               real: pd.DataFrame) -> None:
        scores = score_windows(sentences, score_frames, bank, scorer, **common)
        metrics = None
        if pooled is not None:
            metrics = embedding_metrics(pooled, score_frames, frame_targets, **metric_args)
        results[name] = compare_control(name, scores, real, metrics=metrics, **stat_args).to_dict()

    # Shuffled frame labels: the real narrations and patches judged against permuted frames.
    permuted = shuffled_labels(frames, np.random.default_rng(seed))
    record("shuffled_labels", real["narration"].tolist(), permuted, predicted[rows], real)

    try:
        caption_bank = build_caption_bank(config.narrate, targets, captions, split.train_frames)
        narrator = build_narrator(config.narrate, name=ec.controls_narrator, bank=caption_bank)
    except (ValueError, InputError) as exc:
        results["skipped"] = [f"mean_patch, time_shifted, hippocampus (no narrator: {exc})"]
        return results, f"controls on {len(rows)} windows; narrator-based controls skipped ({exc})"
    results_narrator = getattr(narrator, "name", ec.controls_narrator or config.narrate.narrator)
    run_narrators = {narrations.narrator.name}
    if run_narrators != {results_narrator}:
        real_patches = torch.from_numpy(np.asarray(predictions.patches[narrations.windows[rows]], dtype=np.float32))
        real = score_windows(narrator.narrate(real_patches), frames, bank, scorer, **common)

    # The mean training patch, narrated once, for every window.
    mean_patch = mean_training_patch(targets.patches, split.train_frames)
    sentence = narrator.narrate(torch.from_numpy(mean_patch[None]))[0]
    record("mean_patch", [sentence] * len(rows), frames, np.repeat(mean_patch.mean(0)[None], len(rows), axis=0), real)

    encoder, dataset, why_not = _load_encoder(run)
    if encoder is None:
        skipped += [f"time_shifted, hippocampus ({why_not})"]
    else:
        # At most half the stimulus, so the circular shift never lands back near the true frame.
        shift = targets.n_frames // 2
        if stimulus.frame_rate:
            shift = max(1, min(round(ec.control_shift_s * stimulus.frame_rate), shift))
        shifted = time_shifted_pairs(pairs, targets.n_frames, shift)
        patches = encoder.predict(dataset, shifted)
        record("time_shifted", narrator.narrate(patches), frames, patches.mean(dim=1).numpy(), real)
        results["time_shifted"]["shift_frames"] = shift
        try:
            from neurrator.preprocess.subsets import subset_mask

            mask = subset_mask(dataset.units, ec.control_subset)
        except InputError as exc:
            skipped.append(f"hippocampus ({exc.problem})")
        else:
            patches = encoder.predict(dataset, pairs, units=mask)
            record("hippocampus", narrator.narrate(patches), frames, patches.mean(dim=1).numpy(), real)
            results["hippocampus"]["n_units"] = int(mask.sum())
            results["hippocampus"]["subset"] = ec.control_subset
    for name, r in results.items():
        r["narrator"] = results_narrator if name != "shuffled_labels" else ", ".join(sorted(run_narrators))
    note = f"controls on {len(rows)} windows, narrator {results_narrator}"
    if skipped:
        note += "; skipped: " + ", ".join(skipped)
        results["skipped"] = skipped
    return results, note


def _load_encoder(run: RunDir):
    """The trained encoder and the dataset it reads, or ``(None, None, reason)``."""
    if not runio.has_encoder(run):
        return None, None, f"no trained encoder in {run.stage_dir('train')}"
    dataset = runio.read_dataset(run)
    return runio.read_encoder(run, dataset), dataset, None


# ---- table -------------------------------------------------------------------------------------


def summary_table(summary: dict) -> str:
    """The evaluation summary as Markdown tables (scores, tests, embedding metrics, controls)."""
    scores = summary["scores"]
    ref = summary.get("paper_reference", {}).get("sbert", {})
    paper = {"matched": ref.get("Neurrator"), "word_salad": ref.get("Word-salad floor")}
    rows = [[name, fmt(s["mean"]), fmt(s["std"]), f"[{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]", fmt(paper.get(name))]
            for name, s in scores.items()]
    regime = summary.get("paper_reference", {}).get("regime", "—")
    parts = [markdown_table(
        ["SBERT score", "mean", "std", "95% CI (frames)", f"paper A1 ({regime})"], rows,
        title=f"Sentence scores: {summary['n_windows']} windows, {summary['n_frames']} frames",
        note=(f"matched = {SCORE_COLUMNS['matched']}. Unique sentences: "
              f"{summary.get('unique_sentence_fraction', float('nan')):.1%}."),
    )]
    test_rows = []
    for name, levels in summary["tests"].items():
        cells = [f"{fmt(t['p_value'], 'p')} (n={t['n']}, r={t['rank_biserial']:+.2f})" for t in levels.values()]
        test_rows.append([name.replace("_", " "), fmt(levels["window"]["mean_difference"]), *cells])
    level_names = list(next(iter(summary["tests"].values())).keys()) if summary["tests"] else []
    parts.append(markdown_table(["Wilcoxon (two-sided)", "mean diff", *[f"p, {lv} level" for lv in level_names]],
                                test_rows, note="Frame level (repeats averaged) is the one to quote; shot level is "
                                                "the most conservative."))
    e = summary["embedding"]
    parts.append(markdown_table(
        ["Embedding metric", "value", "chance", "paper A2 (Neurrator)"],
        [["linear CKA (pooled)", fmt(e["cka"]), "0", "0.890"],
         [f"kNN purity (k={e['knn_k']})", fmt(e["knn_purity"]), fmt(e["knn_purity_chance"]), "0.174"],
         ["R@1", fmt(e["r1"], "pct"), fmt(e["r1_chance"], "pct"), "—"],
         ["R@10", fmt(e["r10"], "pct"), fmt(e["r10_chance"], "pct"), "38.8%"],
         ["median rank", fmt(e["median_rank"], "int"), fmt(e["median_rank_chance"], "int"), "14"],
         [f"frame ID within ±{e['tolerance_frames']} frames", fmt(e["frame_id_within_tol"], "pct"),
          fmt(e["frame_id_within_tol_chance"], "pct"), "CEBRA: 94–99%"]],
        title=f"Embedding level: true frame among {e['n_candidates']} candidates",
    ))
    controls = {k: v for k, v in summary.get("controls", {}).items() if k != "skipped"}
    if controls:
        rows = [[name, fmt(c["matched_mean"]), f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]", fmt(c["real_matched_mean"]),
                 fmt(c["frame_p_value"], "p"), fmt(c["r10"], "pct"),
                 "—" if c["unique_sentence_fraction"] is None else f"{c['unique_sentence_fraction']:.0%}"]
                for name, c in controls.items()]
        skipped = summary["controls"].get("skipped")
        parts.append(markdown_table(
            ["Control", "SBERT matched", "95% CI", "real (same windows, same narrator)", "p (real vs control, frames)", "R@10",
             "unique"], rows, title="Controls",
            note=("Skipped: " + "; ".join(skipped)) if skipped else None))
    note = stand_in_note(summary.get("stand_ins", {}))
    if note:
        parts.append(note)
    return "\n\n".join(parts)
