"""``neurrator narrate``: predict the patches of every test window and narrate them.

Reads the dataset, split and stimulus (ingest), the patch targets (embed) and the trained
encoder (train), or with ``narrate.decoder=lm_decoder`` the LM decoder's vision head
(lm_decode). Writes, together or not at all (:func:`neurrator.runio.write_narrated`):

- ``narrate/predictions.*``: :class:`~neurrator.encoder.predictions.Predictions` of every test
  window, ordered by frame then repeat (``preprocess.types.by_frame``);
- ``narrate/narrations.*``: :class:`~neurrator.narrate.narrations.Narrations`, one sentence per
  narrated window with its row of the predictions, the narrator, the caption bank it searched,
  the retrieved training frame, whether the sentence copies a bank caption, and the reference
  captions of the true frame;
- ``narrate/summary.json``: narrator, captioner, counts and timings.

Every test window is narrated unless ``narrate.max_windows`` caps it (a seeded subset).
Offline narrators and captioners are recorded as stand-ins in the manifest.
"""

from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.sampling import seeded_subset
from neurrator.encoder.predictions import Predictions
from neurrator.preprocess.types import by_frame
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    from neurrator.narrate import (
        CAPTION_BANK_NARRATORS,
        build_caption_bank,
        build_captioner,
        build_narrator,
    )
    from neurrator.narrate.narrations import NarratorInfo, narrate_windows

    cfg = config.narrate
    dataset, split, stimulus, targets = (runio.read_dataset(run), runio.read_split(run), runio.read_stimulus(run),
                                         runio.read_targets(run))
    if cfg.decoder == "lm_decoder":  # the vision head of `neurrator lm-decode`
        model, checkpoint = (runio.read_lm_decoder(run, "vision", dataset, targets),
                             runio.lm_decoder_checkpoint_id(run, "vision"))
    else:
        model, checkpoint = runio.read_encoder(run, dataset, targets), runio.checkpoint_id(run)
    seconds: dict[str, float] = {}

    t0 = time.perf_counter()
    windows = by_frame(split.test)
    predictions = Predictions(model.predict(dataset, windows, dtype=torch.float16).numpy(), windows,
                              checkpoint=checkpoint, space_id=targets.info.space_id,
                              n_units=dataset.n_units)
    seconds["predict"] = time.perf_counter() - t0

    rows = seeded_subset(len(windows), cfg.max_windows, config.seed)
    frames = windows[rows, 1]

    # Reference captions of the narrated frames and of the training frames (the retrieval bank).
    t0 = time.perf_counter()
    captioner = build_captioner(cfg, stimulus)
    needs_bank = cfg.narrator in CAPTION_BANK_NARRATORS
    if needs_bank and cfg.strict_bank:  # strict needs every non-training frame's captions too
        needed = np.arange(stimulus.n_frames)
    else:
        needed = np.union1d(frames, split.train_frames) if needs_bank else np.unique(frames)
    captions = dict(zip(needed.tolist(), captioner.caption(stimulus.frames[needed], needed)))
    seconds["captions"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bank = build_caption_bank(cfg, targets, captions, split.train_frames) if needs_bank else None
    narrator = build_narrator(cfg, bank=bank)
    seconds["narrator_load"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    narrations = narrate_windows(
        narrator, torch.from_numpy(predictions.patches[rows].astype(np.float32)), windows=rows,
        pairs=windows[rows], references=[captions.get(int(f), []) for f in frames],
        captioner=NarratorInfo.of(captioner), bank=bank, progress=True,
    )
    seconds["narrate"] = time.perf_counter() - t0

    n_generated = getattr(narrator, "n_generated", None)
    summary = {
        "narrator": narrations.narrator.name,
        "narrator_description": narrations.narrator.description,
        "is_stand_in": narrations.narrator.is_stand_in,
        "captioner": asdict(narrations.captioner),
        "bank": narrations.bank,
        "space_id": targets.info.space_id,
        "checkpoint": predictions.checkpoint,
        "n_test_windows": len(windows),
        "n_narrated": len(rows),
        "n_unique_narrations": len(set(narrations.sentences)),
        "n_copied_bank_captions": int(narrations.copied.sum()),
        "n_lm_generations": n_generated,
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    outputs = runio.write_narrated(run, predictions, narrations, summary)
    if narrator.is_stand_in:
        run.mark_stand_in("narrator", narrations.narrator.description)
    if captioner.is_stand_in:
        run.mark_stand_in("reference_captions", narrations.captioner.description)

    label = " (offline stand-in)" if narrator.is_stand_in else ""
    lm_note = f", {n_generated} LM generations (identical inputs cached)" if n_generated is not None else ""
    sample = np.linspace(0, len(rows) - 1, min(5, len(rows))).astype(int)
    return StageResult(
        summary=(
            f"{len(windows)} test windows predicted ({'×'.join(map(str, predictions.patches.shape[1:]))}, "
            f"{targets.info.space_id}); {len(rows)} narrated by {narrator.name}{label} in {seconds['narrate']:.1f} s "
            f"(+{seconds['narrator_load']:.1f} s load){lm_note}; {summary['n_unique_narrations']} distinct sentences"
        ),
        outputs=[str(p) for p in outputs],
        table="\n".join(f"frame {narrations.pairs[i, 1]:4d} rep {narrations.pairs[i, 0]:2d}: {narrations.sentences[i]}"
                        for i in sample),
    )
