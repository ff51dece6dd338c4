"""``neurrator evaluate``: score the narrations and the predicted patches, with controls.

Reads the narrate stage's predictions and narrations, the stimulus and its reference captions,
the patch targets, the split and (for the controls) the trained encoder; runs
:func:`neurrator.evaluate.evaluation.evaluate_narrations`; writes its
:class:`~neurrator.evaluate.evaluation.Scores`:

- ``evaluate/per_window.parquet``: one row per narrated test window: ``repeat``, ``frame``,
  ``narration``, the SBERT scores and floors, the released-script compatible columns, the copy
  flag, and the retrieval ``rank`` / ``retrieved_frame`` of the window's predicted patches;
- ``evaluate/summary.json``: block-bootstrap CIs, block-level Holm-corrected tests, embedding
  metrics with computed chance levels (the benchmark's readout), controls, stand-ins.

How every number is made: ``docs/evaluation.md``.
"""

from __future__ import annotations

import time

import numpy as np

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.threads import thread_limit
from neurrator.evaluate import build_scorer
from neurrator.evaluate.benchmark import BenchmarkSettings
from neurrator.evaluate.evaluation import EvaluationInputs, control_inputs, evaluate_narrations
from neurrator.evaluate.scores import load_released_pool, load_word_salad
from neurrator.evaluate.tables import render_evaluation
from neurrator.narrate import build_caption_bank, build_narrator
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    with thread_limit(config.evaluate.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    ec = config.evaluate
    t0 = time.perf_counter()
    targets = runio.read_targets(run)
    predictions, narrations = runio.read_narrated(run, targets)
    stimulus = runio.read_stimulus(run)
    split = runio.read_split(run)
    inputs = EvaluationInputs(
        sentences=list(narrations.sentences), pairs=narrations.pairs, windows=narrations.windows,
        predicted=predictions.patches, predicted_frames=predictions.frames, targets=targets.patches,
        train_frames=split.train_frames, captions=runio.read_references(run, stimulus),
        shot_of_frame=stimulus.shot_of_frame, frame_rate=stimulus.frame_rate, scorer=build_scorer(ec),
        word_salad=load_word_salad(ec.word_salad_path), released_pool=load_released_pool(),
    )
    settings = BenchmarkSettings(n_bootstrap=ec.n_bootstrap, ci_level=ec.ci_level, knn_k=ec.knn_k,
                                 tolerance_s=ec.frame_id_tolerance_s, seed=config.seed + ec.seed)
    controls = _controls(run, config, inputs, settings, narrations.narrator.name) if ec.controls else None
    scores = evaluate_narrations(inputs, settings, controls)
    scores.summary.update(
        split={"name": split.name, "description": split.description, **split.leakage()},
        narrator=[narrations.narrator.name], scorer={"name": ec.scorer, "model": ec.scorer_model},
        stand_ins=runio.stand_ins(run), seconds=round(time.perf_counter() - t0, 2),
    )
    outputs = scores.save(run.stage_dir("evaluate"))
    s, r10 = scores.summary["scores"]["matched"], scores.summary["embedding"]["r10"]
    return StageResult(
        summary=(f"{len(scores.per_window)} windows / {scores.summary['n_frames']} frames: SBERT matched "
                 f"{s['mean']:.3f} [{s['ci_low']:.3f}, {s['ci_high']:.3f}]; R@10 {r10['value']:.1%} "
                 f"(chance {r10['chance']:.1%}); copy rate {scores.summary['copy_rate']:.1%}"),
        outputs=[str(p) for p in outputs],
        table=render_evaluation(scores.summary, paper_regime=split.name),
    )


def _controls(run: RunDir, config: RunConfig, inputs: EvaluationInputs, settings, run_narrator: str):
    """The controls' narrator (over a training-frame caption bank) and the trained encoder, if any."""
    ec = config.evaluate
    narrate, name, skipped = None, ec.controls_narrator or config.narrate.narrator, []
    try:
        targets = runio.read_targets(run)
        bank = build_caption_bank(config.narrate, targets, inputs.captions, inputs.train_frames)
        narrator = build_narrator(config.narrate, name=ec.controls_narrator, bank=bank)
        narrate, name = narrator.narrate, narrator.name
    except (ValueError, InputError) as exc:
        skipped.append(f"mean_patch, time_shifted, hippocampus (no narrator: {exc})")
    predict, mask = None, None
    if runio.has_encoder(run):
        from neurrator.preprocess.subsets import subset_mask

        dataset = runio.read_dataset(run)
        encoder = runio.read_encoder(run, dataset)
        predict = lambda pairs, units: encoder.predict(dataset, pairs, units=units)
        try:
            mask = subset_mask(dataset.units, ec.control_subset)
        except InputError:
            mask = None  # the controls note that no unit matches
    return control_inputs(inputs, settings, narrate=narrate, narrator_name=name, run_narrator=run_narrator,
                          predict=predict, unit_mask=None if mask is None else np.asarray(mask),
                          unit_subset=ec.control_subset, max_windows=ec.controls_max_windows,
                          shift_s=ec.control_shift_s, skipped=skipped)
