"""Assemble a :class:`ReportContent` from the objects a run holds (:class:`ReportInputs`).

The report stage loads what exists into :class:`ReportInputs` (``None`` where an artefact is
missing, with a note saying why); :func:`build_report` only arranges and draws. A missing
input is a note on the page; anything else that goes wrong here is a bug and raises.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from neurrator.analysis.result import AnalysisResult
from neurrator.config import RunConfig
from neurrator.evaluate.results import BenchmarkTable
from neurrator.preprocess.types import NeuralDataset
from neurrator.report.content import (
    Figure,
    Note,
    Provenance,
    RawFile,
    ReportContent,
    RunSummary,
    Section,
    StageLine,
    Timeline,
)
from neurrator.report.figures import is_png, score_distribution_png, training_curve_png
from neurrator.report.results import benchmark_tables, evaluation_tables
from neurrator.report.tables import json_tables
from neurrator.report.timeline import build_timeline, timeline_rows
from neurrator.rundir import StageStatus

#: Section titles of the analyses; other folders are titled from their name.
ANALYSIS_TITLES = {
    "scaling": "Scaling curves: fidelity against population size",
    "similarity": "Area and cell-type narration similarity",
    "contrasts": "Cell-type contrasts in language",
    "sae": "Sparse-autoencoder concept dictionary",
    "neurons": "Single-neuron narration",
    "attribution": "DINA-style attribution",
    "dina": "DINA: linear probes, neuron importance with ablation, spatial saliency",
}
#: Analyses whose figure is a key figure (shown near the top rather than in its section).
KEY_ANALYSIS_FIGURES = ("scaling",)
#: Per-window score columns shown in the distribution figure, with what each one is.
DISTRIBUTION_COLUMNS = {
    "matched": "narration vs the true frame's references",
    "shuffled": "vs another shot's references",
    "random_caption": "another shot's caption vs the references",
    "word_salad": "word salad vs the references",
}


@dataclass
class ReportInputs:
    """What the report shows, loaded from a run; ``None`` marks an absent artefact.

    Attributes
    ----------
    statuses : each stage's status and staleness (:func:`neurrator.rundir.stage_statuses`).
    dataset : the ingested :class:`NeuralDataset` (rasters, data facts).
    frames, frame_rate, captions : the stimulus frames (n, H, W) uint8, Hz or ``None``, and its
        captions (references where the narrations carry none).
    unit_ids : ids of the units the encoder used.
    training_log : ``train/log.csv`` (``step`` or ``epoch``, ``train_loss``, ``val_metric``);
        ``best_epoch`` is the kept checkpoint's step (or epoch).
    narrations : one row per narrated window (``repeat``, ``frame``, ``narration``, ``references``).
    per_window : one row per scored window (``repeat``, ``frame``, score columns).
    evaluation : the evaluate stage's summary (``Scores.summary``).
    benchmark : the benchmark stage's :class:`~neurrator.evaluate.results.BenchmarkTable`.
    analyses : the analyze stage's results (``analysis.result.AnalysisResult``), in display order.
    raw : artefacts shown verbatim in the appendix.
    notes : why parts are absent ("missing" / "warning" notes), keyed by part:
        ``"run"``, ``"results"``, ``"figures"``, ``"timeline"``, ``"analyses"``.
    """

    config: RunConfig
    manifest: dict[str, Any]
    config_yaml: str | None
    statuses: Sequence[StageStatus]
    dataset: NeuralDataset | None = None
    frames: np.ndarray | None = None
    frame_rate: float | None = None
    captions: dict[int, list[str]] = field(default_factory=dict)
    unit_ids: np.ndarray | None = None
    training_log: pd.DataFrame | None = None
    best_epoch: int | None = None
    narrations: pd.DataFrame | None = None
    per_window: pd.DataFrame | None = None
    evaluation: dict[str, Any] | None = None
    benchmark: BenchmarkTable | None = None
    analyses: list[AnalysisResult] = field(default_factory=list)
    raw: list[RawFile] = field(default_factory=list)
    notes: dict[str, list[Note]] = field(default_factory=dict)

    def notes_for(self, part: str) -> list[Note]:
        return list(self.notes.get(part, []))


def _pretty(name: str) -> str:
    text = re.sub(r"[_\-]+", " ", name).strip()
    return text[:1].upper() + text[1:]


def _anchor(prefix: str, name: str) -> str:
    return prefix + "-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def method_label(config: RunConfig) -> str:
    """This run's pipeline as a table row: the encoder preset and the narrator."""
    return f"Neurrator ({config.encoder.preset} preset) → {config.narrate.narrator}"


def run_facts(inputs: ReportInputs) -> list[tuple[str, str]]:
    """The first screen's lines: what ran, on what data, with which models."""
    cfg, manifest = inputs.config, inputs.manifest
    facts = [("Run", f"{manifest.get('name') or cfg.name} · seed {manifest.get('seed', cfg.seed)} · "
                     f"created {manifest.get('created', '—')} · git {(manifest.get('git_commit') or 'unknown')[:12]}")]
    ds = inputs.dataset
    if ds is not None:
        sessions = ds.units["session_id"].nunique() if "session_id" in ds.units else 1
        source = "simulated" if cfg.data.source == "simulate" else "recorded"
        facts.append(("Data", f"{ds.stimulus}: {sessions} {source} session{'s' if sessions != 1 else ''}, "
                              f"{ds.n_units:,} units, {ds.n_repeats} repeats × {ds.n_frames} frames, "
                              f"{ds.bin_rate:g} Hz bins, {ds.window}-bin windows"))
    facts.append(("Split", cfg.preprocess.split))
    vision = cfg.vision.backend + (f" ({cfg.vision.model})" if cfg.vision.backend == "clip" else "")
    facts.append(("Models", f"vision space {vision} · encoder preset {cfg.encoder.preset} · narrator "
                            f"{cfg.narrate.narrator}" + (f" ({cfg.narrate.llava_model})" if cfg.narrate.narrator == "llava" else "")
                  + f" · references {cfg.narrate.captioner}"
                  + (f" ({cfg.data.captions_json})" if cfg.data.captions_json else "")
                  + f" · scorer {cfg.evaluate.scorer_model}"))
    return facts


def stage_lines(statuses: Sequence[StageStatus], config: RunConfig) -> list[StageLine]:
    """Every stage but the report itself (running while the page is written), and but simulate
    for recorded data (it never runs there)."""
    def shown(s: StageStatus) -> bool:
        never_runs = s.stage == "simulate" and config.data.source == "nwb" and s.status == "not run"
        return s.stage != "report" and not never_runs

    return [StageLine(s.stage, s.status, s.seconds, s.error, s.stale_because) for s in statuses if shown(s)]


def key_figures(inputs: ReportInputs) -> list[Figure]:
    """Training curve, per-window score distribution, then the analyses' key figures."""
    dpi = inputs.config.report.figure_dpi
    figures = []
    log = inputs.training_log
    if log is not None and len(log):
        png = training_curve_png({c: log[c].to_numpy() for c in log.columns}, best_epoch=inputs.best_epoch, dpi=dpi)
        figures.append(Figure("Training curve", png, caption="training loss and validation metric per validation",
                              source="train/log.csv"))
    per_window = inputs.per_window
    if per_window is not None:
        columns = [c for c in DISTRIBUTION_COLUMNS if c in per_window]
        png = score_distribution_png({c: per_window[c].to_numpy() for c in columns},
                                     title=f"Per-window SBERT ({len(per_window)} test windows)", dpi=dpi)
        meaning = "; ".join(f"{c}: {DISTRIBUTION_COLUMNS[c]}" for c in columns)
        figures.append(Figure("Per-window score distributions", png,
                              caption=f"one dot per test window, boxes span the quartiles. {meaning}",
                              source="evaluate/per_window.parquet"))
    for result in inputs.analyses:
        if result.name in KEY_ANALYSIS_FIGURES:
            figures.extend(analysis_figures(result))
    return figures


def analysis_figures(result: AnalysisResult) -> list[Figure]:
    """An analysis's PNG figures, titled from their file names."""
    return [Figure(Path(name).stem.replace("_", " ").capitalize(), png, source=f"analyze/{result.name}/{name}")
            for name, png in sorted(result.figures.items()) if is_png(png)]


def timeline(inputs: ReportInputs) -> Timeline:
    notes = inputs.notes_for("timeline")
    if not inputs.config.report.timeline:
        return Timeline(notes=[Note("Narrated timeline: turned off (report.timeline=false).", "info")])
    if inputs.narrations is None and inputs.per_window is None:
        return Timeline(notes=notes)
    n_frames = inputs.dataset.n_frames if inputs.dataset is not None else (
        len(inputs.frames) if inputs.frames is not None else
        int(max(t["frame"].max() for t in (inputs.narrations, inputs.per_window) if t is not None)) + 1)
    built = build_timeline(
        timeline_rows(inputs.narrations, inputs.per_window), n_frames=n_frames, frame_rate=inputs.frame_rate,
        frames=inputs.frames, dataset=inputs.dataset, unit_ids=inputs.unit_ids, config=inputs.config.report,
        references=inputs.captions,
    )
    built.notes[:0] = notes
    return built


def analysis_sections(inputs: ReportInputs) -> list[Section]:
    max_rows = inputs.config.report.max_table_rows
    sections = []
    for result in inputs.analyses:
        section = Section(ANALYSIS_TITLES.get(result.name, _pretty(result.name)), _anchor("analysis", result.name),
                          subtitle=result.line)
        if result.name not in KEY_ANALYSIS_FIGURES:
            section.figures = analysis_figures(result)
        else:
            section.notes.append(Note("Its figure is among the key figures above.", "info"))
        section.tables = json_tables(result.summary, f"analyze/{result.name}/summary.json", max_rows=max_rows)
        if section.is_empty:
            section.notes.append(Note(f"analyze/{result.name}: no figures or summary.", "warning"))
        sections.append(section)
    return sections


def build_report(inputs: ReportInputs) -> ReportContent:
    """Everything the page shows, in page order."""
    manifest = inputs.manifest
    provenance = Provenance(config_yaml=inputs.config_yaml, manifest=manifest)
    name = manifest.get("name") or inputs.config.name
    # The run's own narrations first, then the benchmark's tables (A1-A3, within-shot, zero-shot),
    # then the evaluate stage's embedding metrics of the trained encoder.
    own = evaluation_tables(inputs.evaluation, method=method_label(inputs.config)) if inputs.evaluation else []
    results = [*own[:1], *(benchmark_tables(inputs.benchmark) if inputs.benchmark is not None else []), *own[1:]]
    return ReportContent(
        title=f"Neurrator report — {name}",
        summary=RunSummary(name=str(name), facts=run_facts(inputs), stand_ins=provenance.stand_ins,
                           stages=stage_lines(inputs.statuses, inputs.config)),
        provenance=provenance,
        results=results,
        result_notes=inputs.notes_for("results"),
        key_figures=key_figures(inputs),
        timeline=timeline(inputs),
        analyses=analysis_sections(inputs),
        analysis_notes=inputs.notes_for("analyses"),
        appendix=list(inputs.raw),
        notes=inputs.notes_for("run"),
    )


def raw_json(path: str, data: Any) -> RawFile:
    """An artefact's parsed JSON, pretty-printed for the appendix."""
    return RawFile(path, json.dumps(data, indent=2, ensure_ascii=False))
