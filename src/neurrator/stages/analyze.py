"""``neurrator analyze``: scaling curves, area/cell-type probes, SAE concepts, single neurons,
attribution (paper §4.2, §5, A.7, A.8; DINA-style attribution).

Reads the dataset and split (ingest), the patch targets (embed) and the trained encoder
(train); writes ``analyze/<analysis>/{summary.json, results.json, *.png}`` and
``analyze/timings.json`` (wall seconds per analysis). ``docs/analysis_outputs.md`` documents
every file. Which analyses run is ``analysis.analyses``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from neurrator.analysis.common import CachedEncoder, CachedNarrator, evenly_spaced, thread_limit
from neurrator.analysis.suite import RUNNERS, AnalysisInputs, Corpus
from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir, atomic_write_json
from neurrator.core.seed import seed_everything
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.vision import build_space


# ---- reading the run ---------------------------------------------------------------------------
def _encoder_fn(estimator):
    """(windows, unit mask) → patches, through the trained estimator's torch module."""
    module = estimator.model_
    module.eval()

    def encode(x: torch.Tensor, unit_mask: torch.Tensor) -> torch.Tensor:
        return module(x, unit_mask)

    return encode


def _corpus(config: RunConfig, stimulus, targets) -> Corpus:
    """The SAE corpus: a user folder/array, else the run's stimulus frames plus, beside a demo
    movie, the demo scene bank (embedded in the same space)."""
    from neurrator.data.stimulus import load_stimulus

    cfg = config.analysis.sae
    if cfg.corpus is not None:
        from neurrator.analysis.corpus import read_image_corpus

        space = build_space(config.vision)
        if space.info != targets.info:
            raise InputError(
                cfg.corpus,
                f"the configured vision space {space.info.space_id!r} is not the one the "
                f"run's targets come from ({targets.info.space_id!r})",
            )
        images, captions = read_image_corpus(cfg.corpus, cfg.corpus_captions)
        patches = space.embed(images).numpy().astype(np.float16)
        return Corpus(patches, captions, images, f"user corpus {cfg.corpus} ({len(images)} images)")
    captions = [list(stimulus.captions.get(i, [])) for i in range(stimulus.n_frames)]
    description = f"{stimulus.name} frames ({stimulus.n_frames})"
    movie_only = Corpus(targets.patches, captions, stimulus.frames, description)
    if not stimulus.is_stand_in or stimulus.name == "natural_scenes":
        return movie_only
    space = build_space(config.vision)
    if space.info != targets.info:  # targets from elsewhere: the bank cannot be embedded alike
        return movie_only
    scenes = load_stimulus("natural_scenes", None, cache_dir=config.cache_dir)
    patches = space.embed(scenes.frames).numpy().astype(np.float16)
    return Corpus(
        np.concatenate([np.asarray(targets.patches, dtype=np.float16), patches]),
        captions + [list(scenes.captions.get(i, [])) for i in range(scenes.n_frames)],
        [*stimulus.frames, *scenes.frames],  # views, one per image (the sizes differ)
        f"{description} + demo scene bank ({scenes.n_frames} images)",
    )


def _references(run: RunDir, stimulus) -> dict[int, list[str]]:
    """Reference captions as ``evaluate`` uses them (the narrate stage's captioner output wins)."""
    import pandas as pd

    from neurrator.stages.evaluate import merged_captions

    path = run.stage_dir("narrate") / "narrations.parquet"
    if path.is_file():
        return merged_captions(stimulus, pd.read_parquet(path), path)
    return {int(f): list(c) for f, c in stimulus.captions.items() if c}


def build_inputs(run: RunDir, config: RunConfig) -> AnalysisInputs:
    """Everything the analyses read, from the run's ingest, embed and train outputs."""
    from neurrator.data import load_stimulus_record
    from neurrator.encoder import Neurrator
    from neurrator.evaluate.sbert import build_scorer
    from neurrator.evaluate.scores import ReferenceBank, load_word_salad, score_windows
    from neurrator.preprocess.io import load_dataset, load_split
    from neurrator.preprocess.subsets import subset_mask
    from neurrator.stages.embed import read_targets
    from neurrator.stages.evaluate import build_narrator

    cfg = config.analysis
    dataset = load_dataset(run.require("ingest", "dataset"))
    split = load_split(run.require("ingest", "split.json"))
    stimulus = load_stimulus_record(run.require("ingest", "stimulus.json"))
    targets = read_targets(run)
    run.require("train", "checkpoint.safetensors")
    estimator = Neurrator.load(
        run.stage_dir("train"), expect_units=dataset.unit_ids, expect_space=targets.info
    )

    test = split.test[np.lexsort((split.test[:, 0], split.test[:, 1]))]  # by frame, then repeat
    test = test[evenly_spaced(len(test), cfg.max_windows)]
    frames = test[:, 1].astype(np.int64)
    windows = torch.from_numpy(np.ascontiguousarray(dataset.windows(test), dtype=np.float32))

    scorer = build_scorer(config.evaluate)
    encode = CachedEncoder(scorer.encode)
    references = _references(run, stimulus)
    missing = sorted(set(frames.tolist()) - set(references))
    if missing:
        raise InputError(
            run.stage_dir("ingest") / "stimulus.json",
            f"{len(missing)} test frames have no reference caption, e.g. {missing[:5]}",
        )
    bank = ReferenceBank(references, scorer)
    floors = score_windows(
        [references[int(frames[0])][0]] * len(frames),
        frames,
        bank,
        scorer,
        word_salad=load_word_salad(config.evaluate.word_salad_path),
        shot_of_frame=stimulus.shot_of_frame,
        seed=config.seed + config.evaluate.seed,
    )

    def narrator(name: str | None) -> CachedNarrator:
        backend = build_narrator(config, name, targets, references, split.train_frames)
        label = (name or config.narrate.narrator) + (
            " (offline stand-in)" if backend.is_stand_in else ""
        )
        return CachedNarrator(backend.narrate, label)

    narrate = narrator(cfg.narrator)
    narrate_fast = (
        narrate if cfg.scaling.narrator == cfg.narrator else narrator(cfg.scaling.narrator)
    )

    return AnalysisInputs(
        units=dataset.units,
        windows=windows,
        frames=frames,
        encoder=_encoder_fn(estimator),
        narrate=narrate,
        narrate_fast=narrate_fast,
        encode=encode,
        references=references,
        reference_score=lambda sentences, fr: bank.mean_cosine(
            encode(list(sentences)), np.asarray(fr)
        ),
        random_caption_floor=float(np.nanmean(floors["random_caption"])),
        frame_targets=targets.patches,
        mask=lambda spec: subset_mask(dataset.units, spec),
        corpus=_corpus(config, stimulus, targets)
        if {"sae", "neurons"} & set(cfg.analyses)
        else None,
        grid=tuple(targets.info.grid),
        shot_of_frame=stimulus.shot_of_frame,
        batch_size=cfg.batch_size,
        narrate_batch_windows=cfg.narrate_batch_windows,
        seed=config.seed,
        stand_ins=dict(run.manifest().get("stand_ins", {})),
    )


# ---- the stage --------------------------------------------------------------------------------
def _summary_line(name: str, summary: dict) -> str:
    if name == "scaling":
        cross = ", ".join(
            f"{p} {c['sbert'] or '—'}/{c['sbert_gain'] or '—'}"
            for p, c in summary["crossing_points"].items()
        )
        return f"crossing N (SBERT > floor / > shuffled): {cross}"
    if name == "similarity":
        return "shuffled floors: " + ", ".join(f"{k} {v:.3f}" for k, v in summary["floors"].items())
    if name == "contrasts":
        acc = summary["classifier_accuracy"]
        return "classifier " + (
            f"{acc:.2f} (chance {summary['classifier_chance']:.2f}, p={summary['classifier_p_value']:.3g})"
            if acc is not None
            else "n/a"
        )
    if name == "sae":
        s = summary["sae"]
        return (
            f"SAE EV {s['explained_variance']:.3f}, L0 {s['l0']:.1f}, dead {s['dead_fraction']:.1%}"
        )
    if name == "neurons":
        return f"{summary['n_units']} units at {summary['units_per_second']:.1f} units/s"
    if name == "attribution":
        return f"mean per-patch cosine {summary['mean_patch_cosine']:.3f} ({summary['target_kind']} targets)"
    return ""


def run(run: RunDir, config: RunConfig) -> StageResult:
    """Run the selected analyses; one folder per analysis, ``timings.json`` beside them."""
    with thread_limit(config.analysis.num_threads):
        return _run(run, config)


def _run(run: RunDir, config: RunConfig) -> StageResult:
    seed_everything(config.seed)
    out_root = run.stage_dir("analyze")
    t0 = time.perf_counter()
    inputs = build_inputs(run, config)
    timings = {"load_inputs": round(time.perf_counter() - t0, 3)}
    rows, outputs = [], []
    for name in [a for a in RUNNERS if a in config.analysis.analyses]:
        t = time.perf_counter()
        with atomic_dir(out_root / name) as tmp:
            summary = RUNNERS[name](inputs, config.analysis, Path(tmp))
        timings[name] = round(time.perf_counter() - t, 3)
        rows.append((name, timings[name], _summary_line(name, summary)))
        outputs.append(str(out_root / name))
    timings["total"] = round(time.perf_counter() - t0, 3)
    if "sae" in config.analysis.analyses and config.analysis.sae.backend == "topk":
        run.mark_stand_in(
            "sae",
            "TopK SAE trained here on the run's image corpus (paper: the pretrained "
            "Prisma CLIP B/32 SAE, labelled on ImageNet)",
        )
    atomic_write_json(
        out_root / "timings.json",
        {
            "seconds": timings,
            "narrator": inputs.narrate.name,
            "scaling_narrator": inputs.narrate_fast.name,
            "n_windows": len(inputs.frames),
            "n_units": inputs.n_units,
            "stand_ins": inputs.stand_ins,
        },
    )
    width = max(len(r[0]) for r in rows) if rows else 8
    table = "\n".join(
        [
            f"{'analysis':<{width}}  seconds  result",
            *(f"{n:<{width}}  {s:7.1f}  {line}" for n, s, line in rows),
        ]
    )
    return StageResult(
        summary=f"analyze: {len(rows)} analyses in {timings['total']:.1f} s on {len(inputs.frames)} test windows "
        f"× {inputs.n_units} units (narrator {inputs.narrate.name}; scaling {inputs.narrate_fast.name})",
        outputs=[*outputs, str(out_root / "timings.json")],
        table=table,
    )
