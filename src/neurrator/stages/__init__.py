"""Pipeline stages: the only code that reads and writes run directories.

Each stage module exposes ``run(run: RunDir, config: RunConfig) -> StageResult``. Layers
(``neurrator.data`` … ``neurrator.report``) are plain libraries and never touch a run folder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from neurrator.config import RunConfig
from neurrator.core.errors import StageUnavailableError
from neurrator.rundir import RunDir, linear_pipeline

#: Stages in pipeline order, with the module implementing each and a one-line summary.
STAGES: dict[str, tuple[str, str]] = {
    "simulate": ("neurrator.stages.simulate", "Write simulated Allen-format NWB session(s) into the run."),
    "ingest": ("neurrator.stages.ingest", "Read NWB, filter units, bin at 120 Hz, z-score, cut splits."),
    "embed": ("neurrator.stages.embed", "Compute (or load cached) patch targets of the stimulus frames."),
    "train": ("neurrator.stages.train", "Train the spike-window → patch encoder (resumable)."),
    "narrate": ("neurrator.stages.narrate", "Predict patches for test windows and narrate them."),
    "evaluate": ("neurrator.stages.evaluate", "Score narrations (SBERT + controls) and embeddings."),
    "benchmark": ("neurrator.stages.benchmark", "Baselines side by side (Ridge, PCA+kNN, CEBRA, MLP)."),
    "analyze": ("neurrator.stages.analyze", "Scaling curves, area/cell-type probes, SAE concepts."),
    "lm_decode": ("neurrator.stages.lm_decode", "Language-model backbones as decoders of behaviour and vision "
                  "(pretrained vs random, controls, salience)."),
    "report": ("neurrator.stages.report", "Write the self-contained HTML report."),
    "sweep": ("neurrator.stages.sweep", "Fan the cells of a grid file out as Ray tasks; one Parquet table."),
}

#: The order ``neurrator demo`` runs them in.
DEMO_ORDER = ("simulate", "ingest", "embed", "train", "narrate", "evaluate", "benchmark", "analyze", "report")

#: Stages that read whatever a run holds (partial, failed or stale parts become notes) instead
#: of refusing stale inputs; their own outputs are no stage's input.
READS_PARTIAL_RUNS = frozenset({"report"})
#: Each stage and the stages whose outputs it reads: every earlier stage but the report.
PIPELINE = linear_pipeline(tuple(STAGES), unread=READS_PARTIAL_RUNS)
#: lm_decode reads only the ingested data and embed's targets, and only the report reads it.
PIPELINE["lm_decode"] = ("simulate", "ingest", "embed")
PIPELINE["sweep"] = tuple(s for s in PIPELINE["sweep"] if s != "lm_decode")


@dataclass
class StageResult:
    """What a stage reports back: a short summary for the terminal and the files it wrote."""

    summary: str = ""
    outputs: list[str] = field(default_factory=list)
    table: str | None = None


def load_stage(name: str) -> Callable[[RunDir, RunConfig], StageResult]:
    """Import a stage's ``run`` function (stages import lazily: each pulls in its own libraries)."""
    if name not in STAGES:
        raise StageUnavailableError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    return importlib.import_module(STAGES[name][0]).run


def run_stage(name: str, run: RunDir, config: RunConfig) -> StageResult:
    """Run one stage on ``run``: refuses failed or stale inputs (:meth:`RunDir.stage`), records
    status, timing and the input versions it used in the manifest."""
    fn = load_stage(name)
    with run.stage(name, PIPELINE, check_inputs=name not in READS_PARTIAL_RUNS):
        return fn(run, config)
