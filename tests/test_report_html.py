"""The report page: escaping, partial runs, figure embedding, tables and the timeline."""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from test_report_synthetic_run import N_FRAMES, TEST_REPEAT, synthetic_frames, write_synthetic_run

import neurrator.data
from neurrator.config import RunConfig
from neurrator.preprocess.io import load_dataset
from neurrator.report import (
    Provenance,
    ReportConfig,
    ReportContent,
    Section,
    Table,
    build_timeline,
    format_cell,
    json_tables,
    render_report,
    select_windows,
    timeline_rows,
)
from neurrator.stages import report as report_stage

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & </pre>'


class _Page(HTMLParser):
    """Collects the tags and the visible text of a page."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def count(self, tag: str) -> int:
        return sum(t == tag for t, _ in self.tags)

    def images(self) -> list[dict]:
        return [a for t, a in self.tags if t == "img"]

    @property
    def visible(self) -> str:
        return "".join(self.text)


@pytest.fixture
def fake_stimulus_loader(monkeypatch):
    """Stands in for the data layer's stimulus reloader, returning synthetic frames."""
    monkeypatch.setattr(neurrator.data, "load_stimulus_record",
                        lambda path: SimpleNamespace(frames=synthetic_frames(), captions={}), raising=False)


def _render(run, **report_options) -> tuple[str, object]:
    config = RunConfig(name="synthetic").with_overrides({f"report.{k}": v for k, v in report_options.items()})
    result = report_stage.run(run, config)
    return (run.root / "report" / "report.html").read_text(), result


# ---- escaping --------------------------------------------------------------------------------
def test_every_text_is_escaped(tmp_path, fake_stimulus_loader):
    run = write_synthetic_run(tmp_path / "run", narration=HOSTILE, stand_ins={"narrator": HOSTILE})
    (run.root / "config.yaml").write_text((run.root / "config.yaml").read_text() + f"# {HOSTILE}\n")
    bad = run.stage_dir("analyze") / "<b>odd"
    bad.mkdir()
    (bad / "summary.json").write_text(json.dumps({HOSTILE: HOSTILE}))
    html, _ = _render(run, timeline_frames=2)

    page = _Page(html)
    assert page.count("script") == 0
    assert all(not k.startswith("on") for _, attrs in page.tags for k in attrs)
    assert page.count("b") == 0
    # The hostile text is shown, verbatim, as text: in the timeline, the banner, the config, a table.
    assert page.visible.count(HOSTILE) >= 4
    assert "&lt;script&gt;" in html


def test_page_forbids_scripts_and_external_fetches(tmp_path):
    html = render_report(ReportContent("t", Provenance(config_yaml="a: 1", manifest={})))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "img-src data:" in csp and "script-src" not in csp
    assert not re.search(r'(src|href)="(https?:)?//', html)


# ---- partial runs ----------------------------------------------------------------------------
def test_empty_run_renders_with_not_run_notes(tmp_path):
    run = write_synthetic_run(tmp_path / "run", parts=(), stand_ins={})
    html, result = _render(run)
    page = _Page(html)
    text = page.visible
    for needle in ("evaluate/summary.json: not run", "benchmark/tables.json: not run", "analyses: not run",
                   "Narrated timeline (narrate/narrations.parquet): not run", "records no stand-ins"):
        assert needle in text, needle
    assert page.count("img") == 0
    assert "note:" in result.summary


@pytest.mark.parametrize("parts", [("narrate",), ("evaluate",), ("ingest", "narrate"), ("analyze",)])
def test_partial_runs_render_what_exists(tmp_path, parts):
    run = write_synthetic_run(tmp_path / "run", parts=parts)
    html, _ = _render(run, timeline_frames=3)
    text = _Page(html).visible
    if "narrate" in parts:
        assert "a grey grating drifting to the left" in text
        assert "Per-window scores (evaluate/per_window.parquet): not run" in text
    if "evaluate" in parts:
        assert "Decoded sentences (narrate/narrations.parquet): not run" in text
        assert "a grey grating drifting to the left" in text  # per_window.parquet carries the sentences
    if "analyze" not in parts:
        assert "analyses: not run" in text


def test_failed_stage_and_corrupt_artifacts_are_reported_not_raised(tmp_path, fake_stimulus_loader):
    run = write_synthetic_run(tmp_path / "run")
    run.update_manifest(stages={"benchmark": {"status": "failed", "error": "CEBRA <exploded>", "seconds": 2.0}})
    (run.stage_dir("benchmark") / "tables.json").unlink()
    (run.stage_dir("evaluate") / "summary.json").write_text("{not json")
    (run.stage_dir("narrate") / "narrations.parquet").write_bytes(b"PAR1 garbage")
    (run.stage_dir("analyze") / "scaling" / "fake.png").write_bytes(b"GIF89a not a png")
    html, _ = _render(run, timeline_frames=2)
    text = _Page(html).visible
    assert "the benchmark stage failed (CEBRA <exploded>)" in text
    assert "evaluate/summary.json: could not be read" in text
    assert "narrate/narrations.parquet: could not be read" in text
    assert "analyze/scaling/fake.png: not a PNG file" in text


def test_corrupt_manifest_is_reported(tmp_path):
    run = write_synthetic_run(tmp_path / "run", parts=("benchmark",))
    (run.root / "manifest.json").write_text("{broken")
    text = _Page(_render(run)[0]).visible
    assert "Provenance incomplete" in text and "manifest is not valid JSON" in text
    assert "benchmark/tables.json › A1" in text


# ---- figures ---------------------------------------------------------------------------------
def test_every_analysis_figure_is_embedded_byte_for_byte(tmp_path):
    run = write_synthetic_run(tmp_path / "run", parts=("analyze",))
    pngs = sorted(run.stage_dir("analyze").rglob("*.png"))
    assert len(pngs) == 2
    page = _Page(_render(run)[0])
    embedded = [base64.b64decode(a["src"].removeprefix("data:image/png;base64,")) for a in page.images()]
    for png in pngs:
        assert png.read_bytes() in embedded
    assert all(a["src"].startswith("data:image/png;base64,") for a in page.images())


def test_full_run_has_figures_timeline_and_provenance(tmp_path, fake_stimulus_loader):
    run = write_synthetic_run(tmp_path / "run")
    html, result = _render(run, timeline_frames=4)
    page = _Page(html)
    text = page.visible
    # 2 analysis figures + score distribution + training curve + 4 thumbnails + 4 rasters.
    assert len(page.images()) == 2 + 1 + 1 + 4 + 4
    assert "vision_space" in text and "oriented-energy stand-in space" in text
    assert "Package versions" in text and "seed" in text
    assert "3.10e-08" in text  # the summary's p-value, formatted, not recomputed
    assert "4 timeline frames" in result.summary


# ---- tables ----------------------------------------------------------------------------------
def test_json_tables_shapes():
    records = json_tables([{"method": "ridge", "r1": 0.007}, {"method": "cebra", "r1": 0.1}], "A3")
    assert records == [Table("A3", ["method", "r1"], [["ridge", 0.007], ["cebra", 0.1]])]
    nested = json_tables({"ridge": {"a": 1, "b": 2}, "mlp": {"a": 3}}, "A1")
    assert nested[0].columns == ["", "a", "b"] and nested[0].rows == [["ridge", 1, 2], ["mlp", 3, None]]
    mixed = json_tables({"n": 3, "per_window": list(range(100)), "stats": {"p": 0.5}}, "s")
    assert mixed[0].rows == [["n", 3], ["per_window", "[100 values]"]]
    assert mixed[1].title == "s › stats"
    long = json_tables([{"i": i} for i in range(100)], "long", max_rows=10)[0]
    assert len(long.rows) == 10 and "first 10 of 100" in long.note


@pytest.mark.parametrize(
    "value, text",
    [(None, "—"), (True, "yes"), (3, "3"), (0.4261, "0.4261"), (3.1e-8, "3.10e-08"), (float("nan"), "NaN"),
     (123456.0, "123,456"), (38.8, "38.8")],
)
def test_format_cell(value, text):
    assert format_cell(value) == text


def test_sections_render_tables_and_folded_details():
    section = Section("S", "s", tables=[Table("visible", ["k"], [["v1"]])], details=[Table("folded", ["k"], [["v2"]])])
    html = render_report(ReportContent("t", Provenance(None, {}), analyses=[section]))
    assert html.index("<details>") < html.index("folded") and html.index("visible") < html.index("<details>")


# ---- timeline --------------------------------------------------------------------------------
def test_timeline_joins_on_window_identity_and_spreads_frames():
    narr = pd.DataFrame({"repeat": [1, 0, 0, 1], "frame": [5, 5, 9, 9], "narration": ["r1f5", "r0f5", "r0f9", "r1f9"]})
    scores = pd.DataFrame({"repeat": [0, 1, 0], "frame": [9, 5, 5], "sbert": [0.9, 0.5, 0.1]})  # other row order
    rows = timeline_rows(narr, scores)
    table = rows.table.set_index(["repeat", "frame"])
    assert table.loc[(0, 9), "score"] == 0.9 and table.loc[(1, 5), "score"] == 0.5
    assert np.isnan(table.loc[(1, 9), "score"])  # not evaluated → shown as missing, never filled
    chosen = select_windows(rows.table, 5)
    assert chosen["narration"].tolist() == ["r0f5", "r0f9"]  # lowest repeat per frame, frame order

    many = pd.DataFrame({"frame": np.arange(100), "repeat": 0})
    assert select_windows(many, 5)["frame"].tolist() == [0, 25, 50, 74, 99]


def test_scores_join_without_repeat_only_when_unambiguous():
    narr = pd.DataFrame({"repeat": [0, 1, 0, 1], "frame": [5, 5, 9, 9], "narration": list("abcd")})
    in_order = pd.DataFrame({"frame": [5, 5, 9, 9], "matched": [0.1, 0.2, 0.3, 0.4]})
    assert timeline_rows(narr, in_order).table["score"].tolist() == [0.1, 0.2, 0.3, 0.4]
    one_per_frame = pd.DataFrame({"frame": [9, 5], "matched": [0.9, 0.5]})
    assert timeline_rows(narr, one_per_frame).table["score"].tolist() == [0.5, 0.5, 0.9, 0.9]
    shuffled = pd.DataFrame({"frame": [9, 5, 9, 5], "matched": [0.1, 0.2, 0.3, 0.4]})
    rows = timeline_rows(narr, shuffled)
    assert rows.table["score"].isna().all() and "could not be matched" in rows.note


def test_timeline_entries_carry_thumbnails_rasters_and_scores(tmp_path):
    run = write_synthetic_run(tmp_path / "run", parts=("ingest", "narrate", "evaluate"))
    rows = timeline_rows(pd.read_parquet(run.root / "narrate/narrations.parquet"),
                         pd.read_parquet(run.root / "evaluate/per_window.parquet"))
    dataset = load_dataset(run.root / "ingest/dataset")
    entries = build_timeline(rows, frames=synthetic_frames(), dataset=dataset, unit_ids=None,
                             config=ReportConfig(timeline_frames=3, raster_units=8))
    assert [e.frame for e in entries] == [0, N_FRAMES // 2, N_FRAMES - 1]
    per_window = pd.read_parquet(run.root / "evaluate/per_window.parquet").set_index("frame")
    for e in entries:
        assert e.repeat == TEST_REPEAT
        assert e.score == pytest.approx(per_window.loc[e.frame, "matched"])
        assert e.thumbnail.startswith(b"\x89PNG") and e.raster.startswith(b"\x89PNG")
    none = build_timeline(rows, frames=None, dataset=None, unit_ids=None, config=ReportConfig(timeline_frames=2))
    assert all(e.thumbnail is None and e.raster is None for e in none)


def test_references_fall_back_to_the_stimulus_captions():
    rows = timeline_rows(pd.DataFrame({"frame": [3, 4], "narration": ["x", "y"]}), None)
    entries = build_timeline(rows, frames=None, dataset=None, unit_ids=None,
                             config=ReportConfig(timeline_frames=2), references={3: ["a dog", "a hound"]})
    assert [e.references for e in entries] == [["a dog", "a hound"], []]
    assert [e.score for e in entries] == [None, None]
