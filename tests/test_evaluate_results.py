"""Typed results: BenchmarkTable and Scores save, load and validate in one place."""

import json

import numpy as np
import pandas as pd
import pytest

from neurrator.core.errors import InputError
from neurrator.evaluate.benchmark import COLUMNS
from neurrator.evaluate.evaluation import Scores
from neurrator.evaluate.methods import Budget, FitReport
from neurrator.evaluate.results import BenchmarkTable, MethodRow, Metric, RegimeInfo
from neurrator.evaluate.stats import Interval
from neurrator.evaluate.tables import render_benchmark


def _table():
    regime = RegimeInfo(name="repeats", description="repeats 4, 19 held out", leakage={"overlap": 0.0, "leaky": False,
                        "guard_frames": 5}, n_train_windows=100, n_val_windows=10, n_test_windows=20, n_test_frames=20,
                        n_blocks=4, blocks="blocks = shots", holds_out_frames=False)
    ci = Interval(0.3, 0.2, 0.4, 0.95, 4, "percentile block bootstrap")
    metrics = {k: Metric(0.3, ci, 0.1, 0.01) for k in ("sbert", "released", "r1", "r10", "within_1s", "r10_pooled",
                                                        "within_1s_pooled", "within_shot_r1", "copy_rate")}
    metrics.update(median_rank=Metric(5.0, chance=450.5), cka=Metric(0.8, chance=0.2), cka_pooled=Metric(0.7, chance=0.1),
                   knn_purity=Metric(0.5, chance=0.1), sbert_shuffled=Metric(0.1), released_shuffled=Metric(0.1),
                   released_floor=Metric(0.05))
    row = MethodRow(regime="repeats", method="Ridge", family="ridge", iterative=False, answers_unseen_frames=True,
                    fit=FitReport(steps=0, stop_reason="closed_form", cpu_seconds=1.5, n_parameters=1000),
                    metrics=metrics)
    return BenchmarkTable(budget=Budget(max_steps=100, validate_every=10, quick=True), active="repeats",
                          regimes={"repeats": regime}, rows=[row], columns=dict(COLUMNS), context={"narrator": "x"})


def test_benchmark_table_round_trips_and_renders(tmp_path):
    table = _table()
    table.save(tmp_path)
    back = BenchmarkTable.load(tmp_path)
    assert back.to_dict() == json.loads(json.dumps(table.to_dict()))
    assert back.metric("repeats", "Ridge", "r10").above_chance
    md = render_benchmark(back)
    assert md.count("[quick]") >= 5 and "0.70%" in md  # paper A3 Ridge from evaluate.paper
    assert "Table A2" in md and "Fits under one budget" in md


def test_benchmark_table_refuses_undeclared_or_non_finite_metrics(tmp_path):
    table = _table()
    table.rows[0].metrics["made_up"] = Metric(1.0)
    with pytest.raises(ValueError, match="undeclared"):
        table.validate()
    table = _table()
    table.rows[0].metrics["r1"] = Metric(float("nan"))
    with pytest.raises(ValueError, match="finite"):
        table.save(tmp_path)
    (tmp_path / "tables.json").write_text("{}")
    with pytest.raises(InputError, match="tables.json"):
        BenchmarkTable.load(tmp_path)


def test_a_degenerate_interval_is_never_above_chance():
    flat = Metric(0.5, Interval(0.5, 0.5, 0.5, 0.95, 5, "student-t"), chance=0.1)
    assert not flat.above_chance and not Metric.not_applicable("kNN").applicable


def test_scores_round_trip_and_validate(tmp_path):
    per_window = pd.DataFrame({c: np.zeros(3) for c in ("repeat", "frame", "matched", "shuffled", "word_salad",
                                                          "released_matched", "released_floor", "window", "rank",
                                                          "retrieved_frame")})
    per_window["narration"] = ["a", "b", "c"]
    per_window["copied"] = [True, False, False]
    summary = {"scores": {}, "tests": {}, "embedding": {}, "copy_rate": 1 / 3, "released": {}}
    Scores(per_window, summary).save(tmp_path)
    back = Scores.load(tmp_path)
    assert back.summary == summary and back.per_window["copied"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="copied"):
        Scores(per_window.drop(columns="copied"), summary).validate()
    with pytest.raises(InputError):
        Scores.load(tmp_path / "nowhere")
