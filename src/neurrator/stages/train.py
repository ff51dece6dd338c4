"""``neurrator train``: fit the spike-window → patch encoder of the run.

Reads ``ingest/dataset/``, ``ingest/split.json`` and ``embed/targets.json``; trains with
``config.encoder`` (see :mod:`neurrator.encoder.config` for the demo and paper presets) and
writes

- ``train/checkpoint.safetensors`` + ``train/checkpoint.json``: the best-validation weights and
  what they mean (unit ids, z-score stats, vision space, config, seed, split, metrics);
- ``train/log.csv``: loss, validation patch cosine, learning rate and seconds per validation;
- ``train/resume/``: a checkpoint of the last validation while training runs. If the stage is
  killed, running it again continues from there; it is removed once training has finished.
"""

from __future__ import annotations

import shutil

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.rundir import RunDir
from neurrator.stages import StageResult

LOG_FILE = "log.csv"
RESUME_DIR = "resume"


def run(run: RunDir, config: RunConfig) -> StageResult:
    from neurrator.encoder import Neurrator

    dataset, split, targets = runio.read_dataset(run), runio.read_split(run), runio.read_targets(run)
    out = run.stage_dir("train")
    resume = out / RESUME_DIR
    resuming = (resume / "state.json").is_file()

    encoder = Neurrator(seed=config.seed, **config.encoder.model_dump())
    encoder.fit(dataset, targets, split, resume_dir=resume, log_path=out / LOG_FILE)
    outputs = [str(p) for p in encoder.save(out)] + [str(out / LOG_FILE)]
    shutil.rmtree(resume, ignore_errors=True)  # finished: nothing left to resume

    m, c = encoder.meta_.metrics, encoder.config.resolved()
    info = targets.info
    stand_in = " (offline stand-in space)" if info.is_stand_in else ""
    summary = (
        f"{dataset.n_units} units → {info.n_patches}×{info.dim} patches of {info.space_id}{stand_in}; "
        f"preset {c.preset}, {c.head} head, {m['n_parameters']:,} parameters"
        f"{', resumed' if resuming else ''}\n"
        f"{m['steps']} steps, {m['epochs']} full epochs ({m['stopped']}) in {m['seconds']:.0f} s; best at step "
        f"{m['best_step']}: "
        f"validation patch cosine {m['val_cosine']:.3f} (mean-patch floor {m['mean_patch_baseline']:.3f})"
    )
    return StageResult(summary=summary, outputs=outputs)
