"""``neurrator narrate``: predict the patches of every test window and narrate them.

Reads the dataset and split (ingest), the stimulus record (ingest), the patch targets (embed)
and the trained encoder (train). Writes

- ``narrate/predictions.npy``: (n_test, n_patches, dim) float16 predicted patches, one row per
  test window, windows ordered by frame then repeat;
- ``narrate/windows.npy``: (n_test, 2) int64 ``(repeat, frame)`` of each prediction row;
- ``narrate/narrations.parquet``: one row per narrated window with ``window`` (row of
  ``predictions.npy``), ``repeat``, ``frame``, ``narration``, ``narrator``, ``is_stand_in``,
  ``retrieved_frame`` (training frame whose caption led the retrieval, ``-1`` for LLaVA) and
  ``references`` (the reference captions of the true frame, for convenience);
- ``narrate/summary.json``: narrator, captioner, counts and timings.

Every test window is narrated unless ``narrate.max_windows`` caps it (a seeded subset).
Offline narrators and captioners are recorded as stand-ins in the manifest.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch

from neurrator.config import RunConfig
from neurrator.core.io import atomic_dir, atomic_write_json
from neurrator.rundir import RunDir
from neurrator.stages import StageResult

PREDICTIONS_FILE = "predictions.npy"
WINDOWS_FILE = "windows.npy"
NARRATIONS_FILE = "narrations.parquet"
SUMMARY_FILE = "summary.json"
#: Narrators that read a caption bank of training frames.
RETRIEVAL_NARRATORS = ("retrieval", "retrieval+lm")


def ordered_test_windows(test_pairs: np.ndarray) -> np.ndarray:
    """The split's test ``(repeat, frame)`` pairs ordered by frame, then repeat: (n, 2) int64."""
    pairs = np.asarray(test_pairs, dtype=np.int64).reshape(-1, 2)
    return pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]


def narrated_rows(n_windows: int, max_windows: int | None, seed: int) -> np.ndarray:
    """Rows of the windows to narrate: all, or a seeded subset of ``max_windows`` in order."""
    if max_windows is None or max_windows >= n_windows:
        return np.arange(n_windows)
    return np.sort(np.random.default_rng(seed).choice(n_windows, size=max_windows, replace=False))


def run(run: RunDir, config: RunConfig) -> StageResult:
    from neurrator.data import load_stimulus_record
    from neurrator.encoder import Neurrator
    from neurrator.narrate import CaptionBank, build_captioner, build_narrator
    from neurrator.preprocess.io import load_dataset, load_split
    from neurrator.stages.embed import read_targets

    cfg = config.narrate
    out = run.stage_dir("narrate")
    dataset = load_dataset(run.require("ingest", "dataset"))
    split = load_split(run.require("ingest", "split.json"))
    stimulus = load_stimulus_record(run.require("ingest", "stimulus.json"))
    targets = read_targets(run)
    run.require("train", "checkpoint.safetensors")
    model = Neurrator.load(run.stage_dir("train"), expect_units=dataset.unit_ids, expect_space=targets.info)

    t0 = time.perf_counter()
    windows = ordered_test_windows(split.test)
    predictions = model.predict(dataset, windows, dtype=torch.float16)
    predict_seconds = time.perf_counter() - t0

    rows = narrated_rows(len(windows), cfg.max_windows, config.seed)
    frames = windows[rows, 1]

    # Reference captions of the narrated frames and of the training frames (the retrieval bank).
    t0 = time.perf_counter()
    captioner = build_captioner(cfg, stimulus)
    needs_bank = cfg.narrator in RETRIEVAL_NARRATORS
    if needs_bank and cfg.strict_bank:  # strict needs every non-training frame's captions too
        needed = np.arange(stimulus.n_frames)
    else:
        needed = np.union1d(frames, split.train_frames) if needs_bank else np.unique(frames)
    captions = dict(zip(needed.tolist(), captioner.caption(stimulus.frames[needed], needed)))
    caption_seconds = time.perf_counter() - t0

    bank = None
    if needs_bank:
        bank = CaptionBank.from_training_frames(targets.patches, captions, split.train_frames, strict=cfg.strict_bank)
        if cfg.caption_bank_json is not None:
            bank = bank.concat(CaptionBank.from_json(cfg.caption_bank_json, space_id=targets.info.space_id))

    t0 = time.perf_counter()
    narrator = build_narrator(cfg, bank=bank)
    load_seconds = time.perf_counter() - t0
    query = predictions[rows].float()
    t0 = time.perf_counter()
    if hasattr(narrator, "narrate_retrieved"):
        sentences, retrieved = narrator.narrate_retrieved(query, progress=True)
        retrieved_frame = bank.frames[retrieved.entries[:, 0]]
    else:
        sentences = narrator.narrate(query, progress=True)
        retrieved_frame = np.full(len(rows), -1, dtype=np.int64)
    narrate_seconds = time.perf_counter() - t0

    table = pd.DataFrame(
        {
            "window": rows.astype(np.int64),
            "repeat": windows[rows, 0],
            "frame": frames,
            "narration": sentences,
            "narrator": narrator.name,
            "is_stand_in": bool(narrator.is_stand_in),
            "retrieved_frame": retrieved_frame.astype(np.int64),
            "references": [list(captions.get(int(f), [])) for f in frames],
        }
    )
    description = getattr(narrator, "description", narrator.name)
    n_generated = getattr(narrator, "n_generated", None)
    summary = {
        "narrator": narrator.name,
        "narrator_description": description,
        "is_stand_in": bool(narrator.is_stand_in),
        "captioner": captioner.name,
        "captioner_is_stand_in": bool(captioner.is_stand_in),
        "space_id": targets.info.space_id,
        "n_test_windows": len(windows),
        "n_narrated": len(rows),
        "n_bank_entries": None if bank is None else len(bank),
        "n_unique_narrations": int(table["narration"].nunique()),
        "n_lm_generations": n_generated,
        "seconds": {
            "predict": round(predict_seconds, 3),
            "captions": round(caption_seconds, 3),
            "narrator_load": round(load_seconds, 3),
            "narrate": round(narrate_seconds, 3),
        },
    }
    # All four files replace the previous ones together, or not at all.
    with atomic_dir(out) as tmp:
        np.save(tmp / PREDICTIONS_FILE, predictions.numpy())
        np.save(tmp / WINDOWS_FILE, windows)
        table.to_parquet(tmp / NARRATIONS_FILE, index=False)
        atomic_write_json(tmp / SUMMARY_FILE, summary)

    if narrator.is_stand_in:
        run.mark_stand_in("narrator", description)
    if captioner.is_stand_in:
        run.mark_stand_in("reference_captions", getattr(captioner, "description", captioner.name))

    label = " (offline stand-in)" if narrator.is_stand_in else ""
    lm_note = f", {n_generated} LM generations (identical inputs cached)" if n_generated is not None else ""
    sample = table.iloc[np.linspace(0, len(table) - 1, min(5, len(table))).astype(int)]
    return StageResult(
        summary=(
            f"{len(windows)} test windows predicted ({'×'.join(map(str, predictions.shape[1:]))}, {targets.info.space_id}); "
            f"{len(rows)} narrated by {narrator.name}{label} in {narrate_seconds:.1f} s "
            f"(+{load_seconds:.1f} s load){lm_note}; {summary['n_unique_narrations']} distinct sentences"
        ),
        outputs=[str(out / f) for f in (PREDICTIONS_FILE, WINDOWS_FILE, NARRATIONS_FILE, SUMMARY_FILE)],
        table="\n".join(f"frame {r.frame:4d} rep {r.repeat:2d}: {r.narration}" for r in sample.itertuples()),
    )
