"""The encoder's benchmark methods (variants, DINA) on the benchmark tests' planted-relation fixture."""

from dataclasses import replace

import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.core.linalg import fit_pca_basis, mean_patch
from neurrator.evaluate.embedding import centred_cosine, identify
from neurrator.evaluate.methods import BENCHMARK_METHODS, BenchmarkMethod, Budget, FitReport, make_task, run_cell
from neurrator.evaluate.results import MethodRow
from neurrator.preprocess.splits import make_split, measure_overlap
from test_evaluate_baselines import synthetic_problem

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"encoder.d_model": 16, "encoder.n_heads": 2, "encoder.ff_dim": 32, "encoder.conv_channels": 8,
        "encoder.unit_bottleneck": 16, "encoder.basis_rank": 8, "encoder.basis_hidden": 16,
        "encoder.contrastive_dim": 16, "encoder.temporal_layers": 1, "encoder.patch_layers": 1}
BUDGET = Budget(max_steps=300, validate_every=50, patience=2, batch_size=32)
NAMES = ("neurrator_ensemble", "neurrator_rf", "neurrator_contrastive", "neurrator_mixup", "neurrator_whitened",
         "neurrator_regularised", "dina")


@pytest.fixture(scope="module")
def config():
    from neurrator.config import RunConfig

    return RunConfig().with_overrides(TINY)


@pytest.fixture(scope="module")
def problem():
    return synthetic_problem()


def _task(problem, regime: str):
    ds, targets = problem
    split = make_split(regime, 6, 120, seed=0, val_fraction=0.2, test_fraction=0.2, heldout_fraction=0.2)
    return make_task(ds, targets, split, BUDGET, basis_components=24)


def _ident(task, cell, candidates, targets=None):
    patches = (targets or task.targets).patches
    sims = centred_cosine(cell.predicted, patches, mean_patch(patches, task.split.train_frames))
    return identify(sims[:, candidates], cell.test_pairs[:, 1], candidates)


def test_registry_builds_every_variant_and_dina(config):
    methods = [BENCHMARK_METHODS.create(name, config=config) for name in NAMES]
    assert all(isinstance(m, BenchmarkMethod) and m.iterative for m in methods)
    assert len({m.name for m in methods}) == len(methods)  # one table row each
    by_name = dict(zip(NAMES, methods, strict=True))
    assert by_name["dina"].family == "dina" and by_name["dina"].answers_unseen_frames
    assert by_name["neurrator_rf"].encoder_params["rf_units"] == 32
    assert by_name["neurrator_rf"].encoder_params["d_model"] == 16  # the run's encoder config underneath
    assert by_name["neurrator_ensemble"].shifts == (-1, 0)
    assert all(m.family.startswith("neurrator-") for n, m in by_name.items() if n != "dina")


def test_dina_and_the_ensemble_identify_frames_under_the_budget(problem, config):
    task = _task(problem, "repeats")
    for name in ("dina", "neurrator_ensemble"):
        method = BENCHMARK_METHODS.create(name, config=config)
        cell = run_cell(method, task, BUDGET, seed=0, test_pairs=task.split.test)
        ident = _ident(task, cell, np.arange(task.targets.n_frames))
        assert ident.r10.mean() > 4 * ident.r10_chance.mean(), name
        assert cell.fit.steps <= 300 and [s for s, _ in cell.fit.history] == list(range(50, cell.fit.steps + 1, 50))
        # the score variants are chosen by is the benchmark's validation score of the method's own predictions
        assert cell.fit.best_val_score == pytest.approx(
            task.validation_score(lambda p, m=method: m.predict(task, p), method.output), abs=1e-6)
    assert cell.fit.notes["shifts"] == [-1, 0]
    assert cell.fit.best_val_score != cell.fit.notes["val_cosine_unshifted"]


def test_dina_ranks_unseen_frames_through_the_one_readout_and_fails_on_shuffled_frames(problem, config):
    task = _task(problem, "sparse_random")
    held = task.split.test_frames
    assert not np.isin(held, task.split.train_frames).any()
    method = BENCHMARK_METHODS.create("dina", config=config)
    cell = run_cell(method, task, BUDGET, seed=0, test_pairs=task.split.test)
    zero_shot = _ident(task, cell, held)
    assert zero_shot.r1.mean() > 3 * zero_shot.r1_chance.mean()

    # Control: every frame's target replaced by another frame's (responses untouched): the joint
    # space learns nothing that carries over to unseen frames.
    rng = np.random.default_rng(0)
    wrong = replace(task.targets, patches=task.targets.patches[rng.permutation(task.targets.n_frames)])
    shuffled = replace(task, targets=wrong, basis=fit_pca_basis(wrong.patches, task.split.train_frames, 24),
                       _features={})
    control = run_cell(BENCHMARK_METHODS.create("dina", config=config), shuffled, BUDGET, seed=0,
                       test_pairs=task.split.test)
    assert _ident(task, control, held).r1.mean() < zero_shot.r1.mean() / 2


def test_ensemble_refuses_shifts_its_split_guard_does_not_cover(problem, config):
    task = _task(problem, "sparse_random")
    ensemble = BENCHMARK_METHODS.create("neurrator_ensemble", config=config)
    ensemble.shifts = (0, 1)  # the bin sampling reaches 3 bins later, so a later test window meets it
    with pytest.raises(InputError, match="does not cover"):
        ensemble.fit(task, BUDGET, seed=0)
    # The whole-repeat split holds no frame of a test repeat in training: any shift is safe.
    assert BENCHMARK_METHODS.create("neurrator_ensemble", config=config).shifts == (-1, 0)


def test_measure_overlap_takes_asymmetric_shift_ranges():
    split = make_split("sparse_random", 6, 120, seed=0, val_fraction=0.2, test_fraction=0.2, heldout_fraction=0.2)
    tv = np.concatenate([split.train, split.val])
    geometry = {"window": 20, "bins_per_frame": 4}
    assert measure_overlap(tv, split.test, **geometry, jitter=2) == measure_overlap(tv, split.test, **geometry,
                                                                                    jitter=(-2, 2), test_jitter=(0, 0))
    # guard 5 frames: |4·6 + s − t| > 19 for training shifts s in −4..3 and test shifts t in −1..0, not t = +1
    assert measure_overlap(tv, split.test, **geometry, jitter=(-4, 3), test_jitter=(-1, 0)) == 0
    assert measure_overlap(tv, split.test, **geometry, jitter=(-4, 3), test_jitter=(0, 1)) > 0


def test_best_variant_is_chosen_by_validation_not_test():
    from neurrator.encoder.bench_methods import best_variant
    from neurrator.evaluate.results import Metric

    def row(method, family, val, test, iterative=True, regime="repeats"):
        return MethodRow(regime=regime, method=method, family=family, iterative=iterative, answers_unseen_frames=True,
                         fit=FitReport(steps=10, stop_reason="max_steps", best_val_score=val),
                         metrics={"r10": Metric(test)})

    rows = [row("plain", "neurrator", 0.50, 0.9), row("rf", "neurrator-rf", 0.60, 0.1),
            row("checkpoint", "neurrator", 0.99, 0.99, iterative=False), row("DINA", "dina", 0.95, 0.95),
            row("rf elsewhere", "neurrator-rf", 0.99, 0.99, regime="front_only")]
    assert best_variant(rows, "repeats").method == "rf"
    assert best_variant(rows, "none") is None


def test_rows_that_differ_only_in_prediction_share_one_fit(problem, config):
    task = _task(problem, "repeats")
    budget = Budget(max_steps=50, validate_every=50, patience=1, batch_size=32)
    plain = run_cell(BENCHMARK_METHODS.create("neurrator", config=config), task, budget, seed=0,
                     test_pairs=task.split.test[:30])
    ensemble_method = BENCHMARK_METHODS.create("neurrator_ensemble", config=config)
    ensemble = run_cell(ensemble_method, task, budget, seed=0, test_pairs=task.split.test[:30])
    assert "shared" in ensemble.fit.notes["weights"] and ensemble.fit.history == plain.fit.history
    assert not np.allclose(ensemble.predicted, plain.predicted)
    # a fresh fit of the same weights predicts exactly what the shared one does
    fresh = BENCHMARK_METHODS.create("neurrator_ensemble", config=config)
    again = run_cell(fresh, _task(problem, "repeats"), budget, seed=0, test_pairs=task.split.test[:30])
    assert "weights" not in again.fit.notes
    np.testing.assert_allclose(again.predicted, ensemble.predicted, atol=1e-6)
    # another seed is another fit
    other = run_cell(BENCHMARK_METHODS.create("neurrator_ensemble", config=config), task, budget, seed=1,
                     test_pairs=task.split.test[:30])
    assert "weights" not in other.fit.notes


@pytest.mark.slow
def test_benchmark_stage_runs_dina_and_variants_and_the_goal_script_reads_them(tmp_path, capsys):
    """The stage with the encoder's methods in its list: one row each, DINA answering unseen frames
    through the one readout, and the goal check choosing the variant by validation."""
    import importlib.util
    from pathlib import Path

    from neurrator.evaluate.results import BenchmarkTable
    from neurrator.stages import run_stage
    from test_evaluate_stage import SMALL_BENCHMARK, build_run

    small = {**SMALL_BENCHMARK, "methods": ["ridge", "neurrator", "neurrator_ensemble", "dina"],
             "active_only_methods": [], "regimes": ["front_only"]}
    encoder = {k.removeprefix("encoder."): v for k, v in TINY.items()}
    run, config, _ = build_run(tmp_path, config_overrides={"evaluate": {"benchmark": small, "n_bootstrap": 200},
                                                           "encoder": {**encoder, "progress": False}})
    run_stage("benchmark", run, config)
    table = BenchmarkTable.load(run.stage_dir("benchmark"))
    for regime in ("front_only", "sparse_random"):
        assert set(table.methods(regime)) == {"Ridge", "Neurrator (encoder)", "Neurrator (temporal ensemble −1, 0 bins)",
                                              "DINA (contrastive dual towers)"}
    dina = table.row("front_only", "DINA (contrastive dual towers)")
    assert dina.metrics["zero_shot_r10"].applicable and dina.fit.steps <= 20
    assert "soft retrieval" in dina.fit.notes["output"]

    spec = importlib.util.spec_from_file_location(
        "bench_encoder_goal", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_encoder_goal.py")
    goal = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(goal)
    checks = goal.report([table], "synthetic")
    out = capsys.readouterr().out
    best = max((r for r in table.rows if r.regime == "sparse_random" and r.family.startswith("neurrator")),
               key=lambda r: r.fit.best_val_score)
    assert f"→ {best.method}" in out
    assert set(checks) == {"sparse_random: R@10 ahead of every baseline", "sparse_random: ±1 s ahead of every baseline",
                           "sparse_random: within-shot R@1 ahead of every baseline",
                           "front_only: zero-shot R@10 ahead of Ridge", "front_only: zero-shot R@10 ≥ 3 × chance",
                           "sparse_random: zero-shot R@10 ahead of Ridge", "sparse_random: zero-shot R@10 ≥ 3 × chance"}
