"""``neurrator report``: read whatever the run holds, hand it to :mod:`neurrator.report`, write
``report/report.html``.

A partial run is normal (stages are built and re-run independently). A missing input (the
stage never ran, failed, or left an unusable file: :data:`MISSING`) becomes a note on the page;
any other exception is a bug and propagates (the stage then fails and the manifest records it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa

from neurrator.analysis.config import ANALYSES
from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError
from neurrator.core.io import atomic_write_text
from neurrator.evaluate.evaluation import Scores
from neurrator.evaluate.results import BenchmarkTable
from neurrator.report import Note, ReportInputs, Section, build_report, raw_json, render_report
from neurrator.report.text import results_text
from neurrator.rundir import CONFIG_FILE, RunDir
from neurrator.stages import PIPELINE, StageResult

T = TypeVar("T")
#: A missing or unusable input: the artefact is absent (:class:`StageUnavailableError`) or
#: its loader refused it (:class:`InputError`). Only these become notes.
MISSING = (StageUnavailableError, InputError)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None


def _table(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
    except (pa.ArrowException, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(path, f"not a readable table: {exc}") from None


class _Reader:
    """Loads run artefacts; a missing one becomes a note explaining why (stage status)."""

    def __init__(self, run: RunDir, inputs: ReportInputs):
        self.run, self.inputs = run, inputs
        self.status = {s.stage: s for s in inputs.statuses}

    def get(self, part: str, stage: str, name: str, load: Callable[[Path], T]) -> T | None:
        """``load(<stage>/<name>)``, or ``None`` with a note when it is missing or unusable."""
        return self.load(part, stage, f"{stage}/{name}", lambda run: load(run.require(stage, name)))

    def load(self, part: str, stage: str, what: str, read: Callable[[RunDir], T]) -> T | None:
        """``read(run)`` (an artefact-layer reader), or ``None`` with a note on ``part``."""
        try:
            return read(self.run)
        except MISSING as exc:
            self.absent(part, stage, what, exc)
            return None

    def absent(self, part: str, stage: str, what: str, exc: Exception | None = None) -> None:
        """Note on ``part`` of the page why ``what`` is absent: unreadable, failed, not written, not run."""
        status = self.status.get(stage)
        if isinstance(exc, InputError):
            text, level = f"{what} could not be read: {exc}", "warning"
        elif status is not None and status.status == "failed":
            text, level = f"{what}: the {stage} stage failed ({status.error}).", "warning"
        elif status is not None and status.status in ("done", "running"):
            text, level = f"{what}: the {stage} stage {status.status} but did not write it.", "warning"
        else:
            text, level = f"{what}: not run (`neurrator {stage} --run {self.run.root}`).", "missing"
        self.inputs.notes.setdefault(part, []).append(Note(text, level))

    def raw(self, rel: str, data: Any) -> None:
        if data is not None and len(json.dumps(data)) <= self.inputs.config.report.max_appendix_bytes:
            self.inputs.raw.append(raw_json(rel, data))


def read_inputs(run: RunDir, config: RunConfig) -> ReportInputs:
    """Everything the report shows, loaded from ``run`` (absent parts ``None``, with notes)."""
    notes: list[Note] = []
    try:
        manifest = run.manifest()
    except InputError as exc:
        manifest, notes = {}, [Note(f"Provenance incomplete: {exc}", "warning")]
    config_path = run.root / CONFIG_FILE
    inputs = ReportInputs(config=config, manifest=manifest, config_yaml=config_path.read_text() if config_path.is_file() else None,
                          statuses=run.statuses(PIPELINE) if manifest else [], notes={"run": notes})
    r = _Reader(run, inputs)
    inputs.dataset = r.load("timeline", "ingest", "ingest/dataset", runio.read_dataset)
    stimulus = r.load("timeline", "ingest", "ingest/stimulus.json", runio.read_stimulus)
    if stimulus is not None:
        inputs.frames, inputs.frame_rate, inputs.captions = stimulus.frames, stimulus.frame_rate, stimulus.captions
    narrations = r.load("timeline", "narrate", "narrate/narrations.parquet", runio.read_narrations)
    inputs.narrations = None if narrations is None else narrations.to_frame()
    checkpoint = r.get("figures", "train", "checkpoint.json", _json)
    inputs.training_log = r.get("figures", "train", "log.csv", _table)
    if isinstance(checkpoint, dict):
        inputs.unit_ids = checkpoint.get("unit_ids")
        # The log has a row per validation, by optimizer step (or by epoch for older logs).
        unit = "step" if inputs.training_log is not None and "step" in inputs.training_log else "epoch"
        inputs.best_epoch = (checkpoint.get("metrics") or {}).get(f"best_{unit}")
    scores = r.get("results", "evaluate", "summary.json", lambda p: Scores.load(p.parent))
    if scores is not None:
        inputs.per_window, inputs.evaluation = scores.per_window, scores.summary
        r.raw("evaluate/summary.json", scores.summary)
    inputs.benchmark = r.get("results", "benchmark", "tables.json", lambda p: BenchmarkTable.load(p.parent))
    if inputs.benchmark is not None:
        r.raw("benchmark/tables.json", inputs.benchmark.to_dict())
    analyze = run.stage_dir("analyze")
    if not analyze.is_dir():
        r.absent("analyses", "analyze", "analyses")
    names = sorted((p.parent.name for p in analyze.glob("*/summary.json") if not p.parent.name.startswith(".")),
                   key=lambda n: (ANALYSES.index(n) if n in ANALYSES else len(ANALYSES), n))
    for name in names:
        result = r.load("analyses", "analyze", f"analyze/{name}", lambda run, n=name: runio.read_analysis(run, n))
        if result is not None:
            inputs.analyses.append(result)
            r.raw(f"analyze/{name}/results.json", result.results)
    return inputs


def _lm_decode(run: RunDir, content) -> None:
    """The lm-decode section (:mod:`neurrator.report.lm_decode`), after the analyses, if it ran."""
    from neurrator.report.lm_decode import ANCHOR, TITLE, lm_decode_section

    if not (run.stage_dir("lm_decode") / "summary.json").is_file():
        return
    try:
        outputs = runio.read_lm_decode(run)
    except MISSING as exc:
        content.analyses.append(Section(TITLE, ANCHOR, notes=[Note(f"lm_decode could not be read: {exc}", "warning")]))
        return
    salience = outputs["salience"]
    content.analyses.append(lm_decode_section(outputs, salience.figures.get("salience.png") if salience else None))


def run(run: RunDir, config: RunConfig) -> StageResult:
    content = build_report(read_inputs(run, config))
    _lm_decode(run, content)
    page = render_report(content, context_bins=config.report.raster_context_bins)
    out = atomic_write_text(run.stage_dir("report") / "report.html", page)
    problems = [n.text for n in content.all_notes if n.level != "info"]
    summary = (f"report: {out} ({out.stat().st_size / 1e6:.2f} MB; {len(content.results)} result tables, "
               f"{content.n_figures} figures, {len(content.timeline.windows)} narrated windows on the timeline, "
               f"{len(content.summary.stand_ins)} stand-ins flagged)")
    return StageResult(summary="\n".join([summary, *(f"  note: {p}" for p in problems)]), outputs=[str(out)],
                       table=results_text(content.results) or None)
