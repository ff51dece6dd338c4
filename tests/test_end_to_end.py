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
    per_window = pd.read_parquet(run / "evaluate" / "per_window.parquet")
    assert len(per_window) == len(narrations)
    # Values, not just presence: the narrations beat the floors, the predictions beat chance.
    scores = summary["scores"]
    assert scores["matched"]["mean"] > scores["shuffled"]["mean"] > scores["word_salad"]["mean"]
    assert scores["matched"]["ci_low"] > scores["word_salad"]["ci_high"]
    assert summary["released"]["matched"] > summary["released"]["floor"]
    embedding = summary["embedding"]
    assert embedding["r10"]["value"] > 2 * embedding["r10"]["chance"]  # chance computed from the candidates
    assert embedding["cka"]["value"] > embedding["cka"]["chance"]  # chance by permuted pairings
    # Stages re-run on their own from the run directory.
    again = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "report", "--run", str(run)],
        capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]


def test_demo_benchmark_table_is_one_budget_with_computed_chance(demo_run):
    from neurrator.evaluate.results import BenchmarkTable

    run, _ = demo_run
    table = BenchmarkTable.load(run / "benchmark")
    assert table.budget.quick and table.budget.max_steps == 20
    assert all(info.leakage["overlap"] == 0.0 for info in table.regimes.values())
    for row in table.rows:
        if row.iterative:
            assert row.fit.steps <= 20
        assert row.metrics["r10"].chance == pytest.approx(10 / 900)
    # The hippocampus (non-visual) control never crosses the other-shot floor.
    scaling = json.loads((run / "analyze" / "scaling" / "summary.json").read_text())
    assert scaling["crossing_points"]["hippocampus"]["sbert_gain"] is None


@pytest.mark.slow
def test_a_fresh_simulator_seed_keeps_the_hippocampus_control_below_the_floor(tmp_path):
    """The same tiny pipeline on another simulated session (data.simulation.seed=1)."""
    from conftest import TINY

    sets = [arg for s in [*TINY, "data.simulation.seed=1"] for arg in ("--set", s)]
    out = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "demo", "--name", "seed1", "--run", str(tmp_path / "seed1"),
         "--set", f"cache_dir={tmp_path / 'cache'}", *sets],
        capture_output=True, text=True, timeout=1200, cwd=tmp_path, check=False,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    scaling = json.loads((tmp_path / "seed1" / "analyze" / "scaling" / "summary.json").read_text())
    assert scaling["crossing_points"]["hippocampus"]["sbert_gain"] is None
    assert scaling["crossing_points"]["V1"]["pool_size"] > 0
