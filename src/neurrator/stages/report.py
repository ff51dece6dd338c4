"""``neurrator report``: gather whatever the run holds into ``report/report.html``.

This stage only reads the run directory and hands loaded objects to :mod:`neurrator.report`.
A partial run is normal (stages are built and re-run independently): each missing or
unreadable part becomes a "not run" / "unreadable" note in the page instead of an error, and
nothing is filled in that a stage did not produce.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from neurrator.analysis.config import ANALYSES
from neurrator.config import RunConfig
from neurrator.core.errors import NeurratorError
from neurrator.core.io import atomic_write_text
from neurrator.evaluate.scores import SCORE_COLUMNS
from neurrator.report import (
    Figure,
    Note,
    Provenance,
    ReportContent,
    Section,
    Timeline,
    build_timeline,
    is_png,
    json_tables,
    render_report,
    score_distribution_png,
    timeline_rows,
    training_curve_png,
)
from neurrator.rundir import CONFIG_FILE, RunDir
from neurrator.stages import DEMO_ORDER, StageResult

T = TypeVar("T")

#: What can go wrong reading an artifact another stage wrote (pyarrow's errors subclass these).
_READ_ERRORS = (NeurratorError, OSError, ValueError, KeyError, TypeError, IndexError, json.JSONDecodeError)
#: JSON files larger than this are listed, not tabulated (they are per-item dumps).
_MAX_JSON_BYTES = 5_000_000


class _Reader:
    """Reads run artifacts, turning each failure into a note for the page."""

    def __init__(self, run: RunDir):
        self.run = run
        self.manifest_problem: str | None = None
        try:
            manifest = run.manifest()
        except NeurratorError as exc:
            manifest, self.manifest_problem = {}, str(exc)
        self.manifest: dict[str, Any] = manifest if isinstance(manifest, dict) else {}

    def status_note(self, stage: str, what: str) -> Note:
        """Why ``what`` is absent: the stage never ran, failed, or ran without writing it."""
        info = (self.manifest.get("stages") or {}).get(stage) or {}
        status = info.get("status") if isinstance(info, dict) else None
        if status == "failed":
            return Note(f"{what}: the {stage} stage failed ({info.get('error') or 'no message'}).", "warning")
        if status == "done":
            return Note(f"{what}: the {stage} stage ran but did not write it.", "warning")
        if status == "running":
            return Note(f"{what}: the {stage} stage started but did not finish.", "warning")
        return Note(f"{what}: not run (run `neurrator {stage} --run {self.run.root}`).")

    def attempt(self, notes: list[Note], what: str, load: Callable[[], T]) -> T | None:
        try:
            return load()
        except _READ_ERRORS as exc:
            notes.append(Note(f"{what}: could not be read ({exc}).", "warning"))
            return None

    def json(self, path: Path, notes: list[Note]) -> Any:
        return self.attempt(notes, str(self.rel(path)), lambda: json.loads(path.read_text()))

    def parquet(self, path: Path, notes: list[Note]) -> pd.DataFrame | None:
        return self.attempt(notes, str(self.rel(path)), lambda: pd.read_parquet(path))

    def figure(self, path: Path, notes: list[Note]) -> Figure | None:
        data = self.attempt(notes, str(self.rel(path)), path.read_bytes)
        if data is None:
            return None
        if not is_png(data):
            notes.append(Note(f"{self.rel(path)}: not a PNG file; left out.", "warning"))
            return None
        return Figure(title=_pretty(path.stem), png=data, source=str(self.rel(path)))

    def rel(self, path: Path) -> Path:
        try:
            return path.relative_to(self.run.root)
        except ValueError:
            return path


def _pretty(name: str) -> str:
    text = re.sub(r"[_\-]+", " ", name).strip()
    return text[:1].upper() + text[1:]


def _anchor(prefix: str, name: str) -> str:
    return prefix + "-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


# ---- evaluation ------------------------------------------------------------------------------
def _score_columns(per_window: pd.DataFrame) -> list[str]:
    """The evaluate stage's per-window SBERT columns present in the table, in its display order."""
    return [c for c in SCORE_COLUMNS if c in per_window.columns and pd.api.types.is_numeric_dtype(per_window[c])]


#: checkpoint.json fields worth showing (the rest are unit ids, statistics, weights metadata).
_CHECKPOINT_FIELDS = ("kind", "seed", "split", "space", "target_shape", "metrics")


def _training_section(reader: _Reader, config: RunConfig) -> Section:
    section = Section("Encoder training", "eval-training")
    folder = reader.run.stage_dir("train")
    meta_path, log_path = folder / "checkpoint.json", folder / "log.csv"
    meta = reader.json(meta_path, section.notes) if meta_path.is_file() else None
    if not meta_path.is_file():
        section.notes.append(reader.status_note("train", "train/checkpoint.json"))
    if isinstance(meta, dict):
        shown = {k: meta[k] for k in _CHECKPOINT_FIELDS if k in meta}
        section.tables = json_tables(shown, "train/checkpoint.json", max_rows=config.report.max_table_rows)
    log = reader.attempt(section.notes, "train/log.csv", lambda: pd.read_csv(log_path)) if log_path.is_file() else None
    if log is not None and "epoch" in log and len(log):
        metrics = (meta or {}).get("metrics") if isinstance(meta, dict) else None
        best = metrics.get("best_step" if "step" in log.columns else "best_epoch") if isinstance(metrics, dict) else None
        png = training_curve_png({c: log[c].to_numpy() for c in log.columns},
                                 best_epoch=best if isinstance(best, int) else None, dpi=config.report.figure_dpi)
        section.figures.append(Figure("Training curve", png, caption="training loss and validation metric per epoch",
                                      source="train/log.csv"))
    return section


def _json_section(reader: _Reader, title: str, anchor: str, stage: str, filename: str, max_rows: int) -> Section:
    """A section showing ``<stage>/<filename>`` as tables, or a note saying why it cannot."""
    section = Section(title, anchor)
    path = reader.run.stage_dir(stage) / filename
    if path.is_file():
        data = reader.json(path, section.notes)
        if data is not None:
            section.tables = json_tables(data, f"{stage}/{filename}", max_rows=max_rows)
    else:
        section.notes.append(reader.status_note(stage, f"{stage}/{filename}"))
    return section


def _evaluation_sections(reader: _Reader, per_window: pd.DataFrame | None, config: RunConfig) -> list[Section]:
    max_rows = config.report.max_table_rows
    sections = [_training_section(reader, config)]

    sections.append(_json_section(reader, "Narration", "eval-narration", "narrate", "summary.json", max_rows))

    summary = _json_section(reader, "SBERT scores and statistics", "eval-summary", "evaluate", "summary.json", max_rows)
    if per_window is not None:
        columns = _score_columns(per_window)
        if columns:
            png = score_distribution_png({c: per_window[c].to_numpy() for c in columns},
                                         title=f"Per-window scores ({len(per_window)} test windows)",
                                         dpi=config.report.figure_dpi)
            meaning = "; ".join(f"{c}: {SCORE_COLUMNS[c]}" for c in columns)
            summary.figures.append(Figure("Per-window score distributions", png,
                                          caption=f"one dot per test window, boxes span the quartiles. {meaning}",
                                          source="evaluate/per_window.parquet"))
    summary.figures.extend(_stage_figures(reader, "evaluate", summary.notes))
    sections.append(summary)

    bench = _json_section(reader, "Baselines side by side (Tables A1–A3)", "eval-benchmark", "benchmark", "tables.json",
                          max_rows)
    bench.figures.extend(_stage_figures(reader, "benchmark", bench.notes))
    sections.append(bench)
    return sections


def _stage_figures(reader: _Reader, stage: str, notes: list[Note]) -> list[Figure]:
    folder = reader.run.stage_dir(stage)
    if not folder.is_dir():
        return []
    figures = (reader.figure(p, notes) for p in sorted(folder.rglob("*.png")) if not p.name.startswith("."))
    return [f for f in figures if f is not None]


# ---- analyses --------------------------------------------------------------------------------
#: Section titles of the analyses (issue 7 §1–6); other folders are titled from their name.
ANALYSIS_TITLES = {
    "scaling": "Scaling curves: fidelity against population size",
    "similarity": "Area and cell-type narration similarity",
    "contrasts": "Cell-type contrasts in language",
    "sae": "Sparse-autoencoder concept dictionary",
    "neurons": "Single-neuron neurration",
    "attribution": "DINA-style attribution",
}
#: Most tables shown per JSON file (results.json files can hold many nested parts).
_MAX_TABLES_PER_FILE = 30


def _analysis_section(reader: _Reader, sub: Path, config: RunConfig) -> Section:
    section = Section(ANALYSIS_TITLES.get(sub.name, _pretty(sub.name)), _anchor("analysis", sub.name))
    section.figures = _stage_figures(reader, f"analyze/{sub.name}", section.notes)
    # summary.json first and open beside the figures; everything else (results.json) folded.
    jsons = sorted((p for p in sub.rglob("*.json") if not p.name.startswith(".")),
                   key=lambda p: (p.name != "summary.json", str(p)))
    for path in jsons:
        rel = str(reader.rel(path))
        if path.stat().st_size > _MAX_JSON_BYTES:
            section.notes.append(Note(f"{rel}: {path.stat().st_size / 1e6:.1f} MB, too large to tabulate.", "info"))
            continue
        data = reader.json(path, section.notes)
        if data is None:
            continue
        tables = json_tables(data, rel, max_rows=config.report.max_table_rows)
        if len(tables) > _MAX_TABLES_PER_FILE:
            section.notes.append(Note(f"{rel}: first {_MAX_TABLES_PER_FILE} of {len(tables)} parts shown.", "info"))
            tables = tables[:_MAX_TABLES_PER_FILE]
        (section.tables if path.name == "summary.json" else section.details).extend(tables)
    if section.is_empty and not section.notes:
        section.notes.append(Note(f"analyze/{sub.name}: no figures or JSON results.", "warning"))
    return section


def _analysis_sections(reader: _Reader, config: RunConfig) -> tuple[list[Section], list[Note]]:
    folder = reader.run.stage_dir("analyze")
    if not folder.is_dir():
        return [], [reader.status_note("analyze", "analyses")]
    found = {p.name: p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}
    order = [*(a for a in ANALYSES if a in found), *sorted(n for n in found if n not in ANALYSES)]
    sections = [_analysis_section(reader, found[name], config) for name in order]
    for name in config.analysis.analyses:
        if name not in found:
            section = Section(ANALYSIS_TITLES.get(name, _pretty(name)), _anchor("analysis", name))
            section.notes.append(reader.status_note("analyze", f"analyze/{name}"))
            sections.append(section)
    return sections, []


# ---- timeline --------------------------------------------------------------------------------
def _load_stimulus(reader: _Reader, notes: list[Note]):
    """The run's Stimulus (frames for thumbnails, captions as fallback references), or None."""
    path = reader.run.stage_dir("ingest") / "stimulus.json"
    if not path.is_file():
        notes.append(Note("Frame thumbnails: ingest/stimulus.json missing; no thumbnails."))
        return None
    try:
        from neurrator.data import load_stimulus_record
    except ImportError:
        notes.append(Note("Frame thumbnails: this version cannot reload the stimulus (no "
                          "neurrator.data.load_stimulus_record); no thumbnails.", "warning"))
        return None
    return reader.attempt(notes, "Frame thumbnails (ingest/stimulus.json)", lambda: load_stimulus_record(path))


def _load_dataset(reader: _Reader, notes: list[Note]):
    from neurrator.preprocess.io import load_dataset

    folder = reader.run.stage_dir("ingest") / "dataset"
    if not folder.is_dir():
        notes.append(Note("Rasters: ingest/dataset missing; no rasters."))
        return None
    return reader.attempt(notes, "Rasters (ingest/dataset)", lambda: load_dataset(folder, mmap=True))


def _used_unit_ids(reader: _Reader, notes: list[Note]) -> np.ndarray | None:
    """Unit ids the trained model was fitted on (train/checkpoint.json), or None for all units."""
    path = reader.run.stage_dir("train") / "checkpoint.json"
    if not path.is_file():
        return None
    data = reader.json(path, notes)
    ids = data.get("unit_ids") if isinstance(data, dict) else None
    return None if ids is None else np.asarray(ids)


def _timeline(reader: _Reader, narrations: pd.DataFrame | None, per_window: pd.DataFrame | None,
              config: RunConfig) -> Timeline:
    timeline = Timeline()
    if narrations is None and per_window is None:
        timeline.notes.append(reader.status_note("narrate", "Narrated timeline (narrate/narrations.parquet)"))
        return timeline
    if narrations is None:
        timeline.notes.append(reader.status_note("narrate", "Decoded sentences (narrate/narrations.parquet)"))
    if per_window is None:
        timeline.notes.append(reader.status_note("evaluate", "Per-window scores (evaluate/per_window.parquet)"))
    rows = reader.attempt(timeline.notes, "Narrated timeline", lambda: timeline_rows(narrations, per_window))
    if rows is None or config.report.timeline_frames == 0:
        return timeline
    if rows.note:
        timeline.notes.append(Note(f"Per-window scores: {rows.note}.", "warning"))
    stimulus = _load_stimulus(reader, timeline.notes)
    dataset = _load_dataset(reader, timeline.notes)
    unit_ids = _used_unit_ids(reader, timeline.notes)
    entries = reader.attempt(
        timeline.notes, "Narrated timeline",
        lambda: build_timeline(
            rows, frames=None if stimulus is None else stimulus.frames, dataset=dataset, unit_ids=unit_ids,
            config=config.report, references=None if stimulus is None else stimulus.captions,
        ),
    )
    timeline.entries = entries or []
    timeline.score_label = "SBERT" if rows.score_label in ("sbert", "SBERT") else f"SBERT ({rows.score_label})"
    return timeline


# ---- the stage -------------------------------------------------------------------------------
def collect(run: RunDir, config: RunConfig) -> ReportContent:
    """Read everything the run holds into a :class:`ReportContent` (no HTML yet)."""
    reader = _Reader(run)
    notes: list[Note] = []
    if reader.manifest_problem:
        notes.append(Note(f"Provenance incomplete: {reader.manifest_problem}", "warning"))
    config_path = run.root / CONFIG_FILE
    config_yaml = reader.attempt(notes, CONFIG_FILE, config_path.read_text) if config_path.is_file() else None
    manifest = dict(reader.manifest)
    # This stage is running while the page is written; its own timing is not known yet.
    manifest["stages"] = {k: v for k, v in (manifest.get("stages") or {}).items() if k != "report"}

    narrations_path = run.stage_dir("narrate") / "narrations.parquet"
    per_window_path = run.stage_dir("evaluate") / "per_window.parquet"
    timeline_notes: list[Note] = []
    narrations = reader.parquet(narrations_path, timeline_notes) if narrations_path.is_file() else None
    per_window = reader.parquet(per_window_path, timeline_notes) if per_window_path.is_file() else None

    timeline = _timeline(reader, narrations, per_window, config)
    timeline.notes[:0] = timeline_notes
    analyses, analysis_notes = _analysis_sections(reader, config)
    return ReportContent(
        title=f"Neurrator report — {manifest.get('name') or config.name}",
        provenance=Provenance(config_yaml=config_yaml, manifest=manifest),
        evaluation=_evaluation_sections(reader, per_window, config),
        timeline=timeline,
        analyses=analyses,
        analysis_notes=analysis_notes,
        notes=notes,
    )


def run(run: RunDir, config: RunConfig) -> StageResult:
    content = collect(run, config)
    stage_order = [s for s in DEMO_ORDER if s != "report"]
    page = render_report(content, stage_order=stage_order, max_table_rows=config.report.max_table_rows)
    out = atomic_write_text(run.stage_dir("report") / "report.html", page)

    missing = [n.text for s in [*content.evaluation, *content.analyses] for n in s.notes if n.level != "info"]
    missing += [n.text for n in [*content.timeline.notes, *content.analysis_notes, *content.notes] if n.level != "info"]
    summary = (
        f"report: {out} ({out.stat().st_size / 1e6:.2f} MB; {content.n_figures} figures, "
        f"{len(content.timeline.entries)} timeline frames, {len(content.provenance.stand_ins)} stand-ins flagged)"
    )
    if missing:
        summary += "\n" + "\n".join(f"  note: {m}" for m in missing)
    return StageResult(summary=summary, outputs=[str(out)])
