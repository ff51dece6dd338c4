"""The report in a real browser: headless Chromium loads the report of a real tiny run (see
``conftest.py``) without console errors, decodes every image, runs the timeline script the
CSP allows by hash (and nothing else), and dragging the scrubber changes the sentence.

Run with ``pytest -m browser`` (``make test-browser``; ``.ci/run`` installs Debian's
``chromium`` first). Skipped when Chromium is not installed. The DevTools client lives in
``tests/chromium.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest
from chromium import CHROMIUM, Chromium

from neurrator.rundir import RunDir
from neurrator.stages import report as report_stage

pytestmark = pytest.mark.browser

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium not installed (`apt-get install -y chromium`; .ci/run does this)"
)
HOSTILE = '<script>console.error("escaped?")</script><img src=x onerror=console.error(1)></script><!--'


@pytest.fixture
def browser():
    client = Chromium(CHROMIUM, width=1400, height=900)
    try:
        yield client
    finally:
        client.close()


#: Every <img> and CSS background image, with whether it decoded (a broken data URI fails).
_IMAGES = """(async () => {
  const urls = Array.from(document.images).map(i => [i.alt, i.src]);
  document.querySelectorAll('[style*="background-image"]').forEach(el => {
    const m = getComputedStyle(el).backgroundImage.match(/^url\\("(.*)"\\)$/);
    urls.push([el.getAttribute('aria-label') || el.id, m ? m[1] : '']);
  });
  const out = [];
  for (const [alt, src] of urls) {
    const img = new Image(); img.src = src;
    let ok = true; try { await img.decode(); } catch (e) { ok = false; }
    out.push({alt, ok: ok && img.naturalWidth > 0});
  }
  return out;
})()"""

_STATE = """({sentence: document.getElementById('tl-sentence').textContent,
  score: document.getElementById('tl-score').textContent,
  frame: document.getElementById('tl-frame').style.backgroundPosition,
  raster: Array.from(document.querySelectorAll('.tl-strip')).filter(s => !s.hidden)
             .map(s => s.querySelector('.tl-raster').style.backgroundPosition).join(),
  slider: +document.getElementById('tl-slider').value})"""


def _drag(browser: Chromium, to_fraction: float) -> None:
    """Press on the scrubber's thumb, drag it to ``to_fraction`` of its width, release."""
    browser.evaluate("document.getElementById('tl-slider').scrollIntoView({block: 'center'})")
    box = browser.evaluate("(() => { const r = document.getElementById('tl-slider').getBoundingClientRect();"
                           " return {x: r.left, y: r.top + r.height / 2, w: r.width}; })()")
    start = box["x"] + 4
    browser.mouse("mousePressed", start, box["y"])
    for k in range(1, 11):
        browser.mouse("mouseMoved", start + (box["w"] * to_fraction - 4) * k / 10, box["y"])
    browser.mouse("mouseReleased", box["x"] + box["w"] * to_fraction, box["y"], buttons=0)


@needs_chromium
def test_report_runs_its_timeline_and_nothing_else(tiny_run_copy, browser):
    run = RunDir.open(tiny_run_copy)
    path = run.stage_dir("narrate") / "narrations.parquet"
    narrations = pd.read_parquet(path)
    first = narrations.sort_values(["frame", "repeat"]).index[0]
    narrations.loc[first, "narration"] = HOSTILE
    narrations.to_parquet(path)
    report_stage.run(run, run.config())
    page = run.stage_dir("report") / "report.html"

    browser.open(page.resolve().as_uri())
    images = browser.evaluate(_IMAGES, await_promise=True)
    assert browser.console_problems() == []
    assert len(images) >= 6 and all(img["ok"] for img in images), images
    # The one timeline script and its JSON data block; the hostile text is only text.
    assert browser.evaluate("Array.from(document.scripts).map(s => s.type || 'js')") == ["application/json", "js"]
    before = browser.evaluate(_STATE)
    assert before["sentence"] == HOSTILE and before["slider"] == narrations.loc[first, "frame"]
    assert browser.evaluate("document.getElementById('stand-ins').open") is False

    _drag(browser, 0.7)
    after = browser.evaluate(_STATE)
    assert after["slider"] > before["slider"] + 100
    assert after["sentence"] != before["sentence"]
    assert after["frame"] != before["frame"] and after["raster"] != before["raster"]
    browser.call("Input.dispatchKeyEvent", {"type": "keyDown", "key": "ArrowRight", "code": "ArrowRight",
                                            "windowsVirtualKeyCode": 39})
    assert browser.evaluate(_STATE)["slider"] == after["slider"] + 1
    assert browser.console_problems() == []


@needs_chromium
def test_the_checks_catch_a_broken_page(tmp_path, browser):
    """Negative control: a script the policy blocks and a broken image are both caught."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" "
        "content=\"default-src 'none'; img-src data:\"><title>x</title></head><body>"
        "<script>console.log(1)</script><img alt=bad src=\"data:image/png;base64,AAAA\"></body></html>"
    )
    browser.open(broken.as_uri())
    assert any("Content Security Policy" in p for p in browser.console_problems())
    assert browser.evaluate(_IMAGES, await_promise=True) == [{"alt": "bad", "ok": False}]
