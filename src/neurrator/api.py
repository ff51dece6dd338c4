"""The Python API: the pipeline in a few calls, and the building blocks by name.

Whole runs, as the CLI does them::

    from neurrator import api
    run = api.run_pipeline({"name": "mine", "data": {"simulation": {"n_units": 300}}})
    print(run.stage_dir("report") / "report.html")

Building blocks, for notebooks (each is the layer's own function, re-exported here)::

    session = api.read_session("session_715093703.nwb")           # Allen NWB → Session
    stimulus = api.load_stimulus("natural_movie_one", stimulus_dir) # frames + captions
    dataset = api.build_dataset([session], "natural_movie_one", "repeats")
    split = api.make_split("repeats", dataset.n_repeats, dataset.n_frames, seed=0)
    targets = api.get_or_build_targets(api.build_space(config.vision), stimulus, ".neurrator-cache")
    model = api.Neurrator(seed=0).fit(dataset, targets, split)
    patches = model.predict(dataset, split.test, units="group:V1")
    bank = api.build_caption_bank(config.narrate, targets, stimulus.captions, split.train_frames)
    sentences = api.build_narrator(config.narrate, name="retrieval", bank=bank).narrate(patches)

A finished run's objects, typed and validated (``api.runio`` knows which file holds what)::

    narrations = api.runio.read_narrations(run)      # Narrations: sentence, narrator, bank, copies
    predictions = api.runio.read_predictions(run)    # Predictions: (n, n_patches, dim) + pairs
    sae = api.runio.read_analysis(run, "sae")        # AnalysisResult: tables, figures, inputs used
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from neurrator import runio
from neurrator.analysis.result import AnalysisResult
from neurrator.config import RunConfig
from neurrator.data.allen import read_session
from neurrator.data.simulate import simulate_session
from neurrator.data.stimulus import load_stimulus
from neurrator.encoder import Neurrator, NeurratorRetriever
from neurrator.encoder.predictions import Predictions
from neurrator.evaluate import build_scorer
from neurrator.narrate import build_caption_bank, build_narrator
from neurrator.narrate.narrations import Narrations
from neurrator.preprocess import build_dataset, load_dataset, load_split, make_split, subset_mask
from neurrator.rundir import RunDir
from neurrator.stages import DEMO_ORDER, StageResult, run_stage
from neurrator.vision import build_space
from neurrator.vision.cache import get_or_build_targets, load_targets

__all__ = [
    "AnalysisResult",
    "Narrations",
    "Neurrator",
    "NeurratorRetriever",
    "Predictions",
    "RunConfig",
    "RunDir",
    "build_caption_bank",
    "build_dataset",
    "build_narrator",
    "build_scorer",
    "build_space",
    "get_or_build_targets",
    "load_dataset",
    "load_split",
    "load_stimulus",
    "load_targets",
    "make_split",
    "read_session",
    "run_pipeline",
    "runio",
    "simulate_session",
    "subset_mask",
]


def resolve_config(config: RunConfig | dict[str, Any] | str | Path | None) -> RunConfig:
    """A ``RunConfig`` from an object, a dict of fields, a YAML path, or ``None`` (defaults)."""
    if config is None:
        return RunConfig()
    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.validated(config)
    return RunConfig.from_yaml(config)


def run_pipeline(
    config: RunConfig | dict[str, Any] | str | Path | None = None,
    run_dir: str | Path | None = None,
    *,
    stages: Iterable[str] = DEMO_ORDER,
    on_stage: Callable[[str, StageResult], None] | None = None,
) -> RunDir:
    """Run ``stages`` in order into ``run_dir`` (default ``runs/<config.name>``).

    Parameters
    ----------
    config : the run's configuration (see :class:`neurrator.config.RunConfig`).
    run_dir : where outputs go; created if needed. Re-running a stage replaces its outputs.
    stages : which stages, in pipeline order; later stages read earlier stages' outputs.
    on_stage : called after each stage with its name and result (progress reporting).

    Returns
    -------
    The :class:`RunDir`; ``run.stage_dir("report") / "report.html"`` is the report.
    """
    cfg = resolve_config(config)
    run = RunDir.create(run_dir if run_dir is not None else Path("runs") / cfg.name, cfg)
    for stage in stages:
        result = run_stage(stage, run, cfg)
        if on_stage is not None:
            on_stage(stage, result)
    return run
