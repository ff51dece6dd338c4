"""The report page, rendered from a real tiny run the pipeline wrote (``conftest.py``):
results first, escaping, the script allowed by hash, partial and broken runs as notes, code
errors raised."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import pytest

from neurrator import runio
from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.report import Estimate, format_estimate
from neurrator.report.html import json_for_html
from neurrator.rundir import RunDir
from neurrator.stages import report as report_stage
from neurrator.stages import PIPELINE, run_stage

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)> & </pre></script><!-- \u2028'


class _Page(HTMLParser):
    """Tags, visible text and script bodies of a page, and the ids in document order."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []
        self.scripts: list[tuple[dict, str]] = []
        self._in_script: dict | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = dict(attrs)
            self.scripts.append((self._in_script, ""))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = None

    def handle_data(self, data):
        if self._in_script is not None:
            attrs, body = self.scripts[-1]
            self.scripts[-1] = (attrs, body + data)
        else:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return "".join(self.text)

    def ids(self) -> list[str]:
        return [a["id"] for _, a in self.tags if "id" in a]


def _render(run_root) -> tuple[str, object]:
    run = RunDir.open(run_root)
    result = report_stage.run(run, run.config())
    return (run.stage_dir("report") / "report.html").read_text(), result


@pytest.fixture(scope="module")
def demo_page(tiny_demo_run) -> str:
    """The report the tiny demo wrote itself."""
    run, _ = tiny_demo_run
    return (run / "report" / "report.html").read_text()


# ---- layout: results first ---------------------------------------------------------------
def test_results_come_first_then_figures_timeline_analyses_appendix(demo_page):
    page = _Page(demo_page)
    ids = page.ids()
    order = [ids.index(i) for i in ("stand-ins", "results", "figures", "timeline", "tl", "analyses", "appendix")]
    assert order == sorted(order)
    # The first result table sits before any figure.
    assert demo_page.index('class="results"') < demo_page.index("<figure")
    # The stand-in banner is one line, its details one click away.
    assert re.search(r'<details class="banner" id="stand-ins">\s*<summary>', demo_page)


def test_result_tables_have_methods_as_rows_and_reference_rows(demo_page):
    tables = re.findall(r'<table class="results">.*?</table>', demo_page, flags=re.S)
    assert len(tables) >= 2
    narration = tables[0]
    assert "Neurrator (demo preset)" in narration and "floor: word salad" in narration
    assert 'class="ci"' in narration  # intervals are shown


def test_demo_ends_with_the_results_summary(tiny_demo_run):
    _, out = tiny_demo_run
    after = out.stdout.split("Report: ")[-1]
    assert "**Narration fidelity" in after
    assert after.count("| method") >= 2


def test_raw_json_only_in_the_collapsed_appendix(demo_page):
    appendix = demo_page.index('id="appendix"')
    assert "<pre>" not in demo_page[:appendix]
    assert demo_page.count("<details>", appendix) >= 2


def test_timeline_covers_every_narrated_frame(demo_page, tiny_demo_run):
    run, _ = tiny_demo_run
    page = _Page(demo_page)
    data = json.loads(next(body for attrs, body in page.scripts if attrs.get("type") == "application/json"))
    narrated = pd.read_parquet(run / "narrate" / "narrations.parquet")
    assert [w[0] for w in data["windows"]] == sorted(narrated["frame"].unique().tolist())
    assert data["n_frames"] == 900 and data["sprite"]["n"] * data["sprite"]["step"] >= 900
    first = narrated.sort_values(["frame", "repeat"]).iloc[0]
    assert data["windows"][0][:3] == [int(first["frame"]), int(first["repeat"]), first["narration"]]
    assert all(w[5] is not None for w in data["windows"])  # every window has its raster position


# ---- the page's only script is ours, allowed by its hash ---------------------------------
def test_csp_allows_exactly_the_timeline_script(demo_page):
    page = _Page(demo_page)
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    code = [body for attrs, body in page.scripts if "type" not in attrs]
    assert len(code) == 1 and len(page.scripts) == 2
    digest = base64.b64encode(hashlib.sha256(code[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "unsafe-eval" not in csp and "http" not in csp
    assert not [a for t, a in page.tags if t in ("img", "link") and not a.get("src", a.get("href", "data:")).startswith("data:")]


# ---- escaping ------------------------------------------------------------------------------
def test_every_text_is_escaped(tiny_run_copy):
    run = RunDir.open(tiny_run_copy)
    path = run.stage_dir("narrate") / "narrations.parquet"
    narrations = pd.read_parquet(path)
    narrations["narration"] = HOSTILE
    narrations["references"] = [[HOSTILE, "ok"]] * len(narrations)
    narrations.to_parquet(path)
    run.mark_stand_in("narrator", HOSTILE)
    (run.root / "config.yaml").write_text((run.root / "config.yaml").read_text() + f"# {HOSTILE}\n")
    runio.write_analysis(run, AnalysisResult("<b>odd", summary={HOSTILE: HOSTILE}, results={}, inputs={}, line=HOSTILE))
    html, _ = _render(run.root)
    page = _Page(html)
    assert "<script>alert" not in html and "<img src=x" not in html
    assert [t for t, _ in page.tags].count("script") == 2
    assert not [a for _, a in page.tags if any(k.startswith("on") for k in a)]  # no event handler attributes
    assert HOSTILE in page.visible  # shown as text (banner, config, analysis table, first window)
    data = next(body for attrs, body in page.scripts if attrs.get("type") == "application/json")
    assert "<" not in data and ">" not in data and "\u2028" not in data
    assert json.loads(data)["windows"][0][2] == HOSTILE


@pytest.mark.parametrize("text", [HOSTILE, "</script>", "<!--", "a\u2028b\u2029c", "&amp;", "\"'\\"])
def test_json_for_html_round_trips_and_cannot_close_the_block(text):
    encoded = json_for_html({"t": [text, None, 1.5]})
    assert json.loads(encoded) == {"t": [text, None, 1.5]}
    assert "<" not in encoded and ">" not in encoded and "&" not in encoded


# ---- partial, broken and stale runs -------------------------------------------------------
@pytest.mark.parametrize("removed", [("analyze",), ("benchmark", "analyze"), ("evaluate",), ("narrate", "evaluate")])
def test_partial_runs_render_with_notes(tiny_run_copy, removed):
    for stage in removed:
        shutil.rmtree(tiny_run_copy / stage)
    manifest = json.loads((tiny_run_copy / "manifest.json").read_text())
    for stage in removed:
        manifest["stages"].pop(stage)
    (tiny_run_copy / "manifest.json").write_text(json.dumps(manifest))
    html, result = _render(tiny_run_copy)
    for stage in removed:
        assert f"`neurrator {stage} --run" in _Page(html).visible, stage
        assert f"{stage}" in result.summary


def test_a_corrupt_artifact_is_a_note_naming_the_file(tiny_run_copy):
    (tiny_run_copy / "evaluate" / "summary.json").write_text("{oops")
    (tiny_run_copy / "narrate" / "narrations.parquet").write_bytes(b"PAR1 not parquet")
    html, result = _render(tiny_run_copy)
    visible = _Page(html).visible
    assert "evaluate/summary.json could not be read" in visible and "not valid JSON" in visible
    assert "narrations.parquet could not be read" in visible
    assert "could not be read" in result.summary


def test_failed_and_stale_stages_are_flagged(tiny_run_copy):
    run = RunDir.open(tiny_run_copy)
    with pytest.raises(RuntimeError), run.stage("benchmark", PIPELINE):
        raise RuntimeError("CEBRA <exploded>")
    html, _ = _render(tiny_run_copy)
    visible = _Page(html).visible
    assert "Stage benchmark failed: CEBRA <exploded>" in visible
    assert "Stage analyze is stale: benchmark failed after it ran" in visible


def test_a_code_error_raises_and_is_recorded(tiny_run_copy, monkeypatch):
    """A bug is not a note: it propagates, and run_stage records the failure."""
    import neurrator.report.build as build

    def broken(*args, **kwargs):
        raise KeyError("a bug")

    monkeypatch.setattr(build, "evaluation_tables", broken)
    run = RunDir.open(tiny_run_copy)
    with pytest.raises(KeyError, match="a bug"):
        run_stage("report", run, run.config())
    assert run.manifest()["stages"]["report"]["status"] == "failed"


def test_missing_inputs_are_the_only_exceptions_turned_into_notes():
    assert report_stage.MISSING == (report_stage.StageUnavailableError, InputError)


def test_analysis_figures_are_embedded_byte_for_byte(demo_page, tiny_demo_run):
    run, _ = tiny_demo_run
    pngs = sorted((run / "analyze").rglob("*.png"))
    assert pngs
    for png in pngs:
        assert base64.b64encode(png.read_bytes()).decode() in demo_page, png


@pytest.mark.parametrize(
    ("estimate", "text"),
    [(Estimate(0.5089, 0.4919, 0.5249), ("0.509", "0.492–0.525")),
     (Estimate(0.476, 0.45, 0.5, unit="percent"), ("47.6 %", "45.0–50.0")),
     (Estimate(12.0, unit="rank"), ("12", "")),
     (Estimate(None, missing="n/a"), ("n/a", "")),
     (Estimate(float("nan")), ("—", ""))],
)
def test_format_estimate(estimate, text):
    assert format_estimate(estimate) == text
