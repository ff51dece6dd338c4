"""The whole pipeline, on the embedded offline default at a tiny scale, through the CLI.

This is ``neurrator demo`` with smaller sizes: same stages, same backends (simulated Allen
session, oriented-energy space, retrieval+SmolLM2 narrator, SBERT), so a broken hand-off
between any two stages fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest


@pytest.fixture(scope="module")
def demo_run(tiny_demo_run):
    """The tiny ``neurrator demo`` of ``conftest.py`` (shared with the report tests)."""
    return tiny_demo_run


def test_demo_writes_every_stage_and_a_report(demo_run):
    run, out = demo_run
    report = run / "report" / "report.html"
    assert f"Report: {report.resolve()}" in out.stdout
    manifest = json.loads((run / "manifest.json").read_text())
    for stage in ["simulate", "ingest", "embed", "train", "narrate", "evaluate", "benchmark", "analyze", "report"]:
        assert manifest["stages"][stage]["status"] == "done", stage
    # Every offline stand-in is declared, and the report says so.
    assert {"session", "vision_space", "narrator"} <= set(manifest["stand_ins"])
    html = report.read_text()
    assert "stand-in" in html.lower()


def test_demo_narrations_are_scored_against_references(demo_run):
    run, _ = demo_run
    narrations = pd.read_parquet(run / "narrate" / "narrations.parquet")
    assert len(narrations) > 0
    assert narrations["narration"].str.len().gt(0).all()
    summary = json.loads((run / "evaluate" / "summary.json").read_text())
    assert summary  # the per-window scores and statistics exist
    per_window = pd.read_parquet(run / "evaluate" / "per_window.parquet")
    assert len(per_window) == len(narrations)
    # Stages re-run on their own from the run directory.
    again = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "report", "--run", str(run)],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
