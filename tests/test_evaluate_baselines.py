"""Benchmark methods (adapters of the baselines) on a small synthetic problem with a planted relation."""

import math

import numpy as np
import pandas as pd
import pytest

from neurrator.core.linalg import fit_pca_basis, mean_patch, pool_patches
from neurrator.evaluate.baselines import window_features
from neurrator.evaluate.embedding import centred_cosine, identify
from neurrator.evaluate.methods import (
    BENCHMARK_METHODS,
    BenchmarkMethod,
    Budget,
    CEBRAKNNMethod,
    MLPMethod,
    PCAKNNMethod,
    RidgeMethod,
    early_stopping_loop,
    make_task,
    run_cell,
)
from neurrator.preprocess.splits import make_split
from neurrator.preprocess.types import NeuralDataset, ZScoreStats
from neurrator.vision.base import PatchTargets, SpaceInfo


def synthetic_problem(n_frames=120, n_repeats=6, n_units=60, n_patches=16, dim=8, noise=0.5, seed=0):
    """Responses driven by a smooth per-frame latent; targets are a fixed map of the same latent."""
    rng = np.random.default_rng(seed)
    latent = np.cumsum(rng.normal(size=(n_frames, 6)), axis=0)
    latent = (latent - latent.mean(0)) / latent.std(0)
    patches = np.einsum("fl,lpd->fpd", latent, rng.normal(size=(6, n_patches, dim))).astype(np.float16)
    bpf, window, pad = 4, 20, 10
    drive = np.repeat(latent @ rng.normal(size=(6, n_units)), bpf, axis=0)  # (n_bins, n_units)
    responses = np.zeros((n_repeats, n_frames * bpf + 2 * pad, n_units), dtype=np.float32)
    responses[:, pad:-pad] = drive[None] + noise * rng.normal(size=(n_repeats, n_frames * bpf, n_units))
    units = pd.DataFrame({"area": ["VISp"] * n_units}, index=pd.Index(np.arange(n_units), name="unit_id"))
    ds = NeuralDataset(stimulus="natural_movie_one", responses=responses, bins_per_frame=bpf, window=window, pad=pad,
                       units=units, zscore=ZScoreStats(np.zeros(n_units, np.float32), np.ones(n_units, np.float32)),
                       n_frames=n_frames)
    info = SpaceInfo(space_id="synthetic", grid=(4, 4), dim=dim, layer="none", is_stand_in=True, description="")
    return ds, PatchTargets(patches=patches, info=info, stimulus_hash="x")


def test_window_features_average_chunks():
    ds, _ = synthetic_problem()
    pairs = np.array([[0, 5], [3, 100]])
    f = window_features(ds, pairs, n_chunks=2)
    w = ds.windows(pairs)
    assert f.shape == (2, 2 * ds.n_units)
    np.testing.assert_allclose(f[:, : ds.n_units], w[:, :10].mean(1), rtol=1e-5)
    np.testing.assert_allclose(f[:, ds.n_units :], w[:, 10:].mean(1), rtol=1e-5)


def test_pca_basis_is_orthonormal_and_reconstructs_training_frames():
    _, targets = synthetic_problem()
    patches = targets.patches
    frames = np.arange(0, 120, 2)
    basis = fit_pca_basis(patches, frames, 200, patch_chunk=5)
    assert 6 <= basis.rank <= len(frames) - 1
    np.testing.assert_allclose((basis.components @ basis.components.T)[:6, :6], np.eye(6), atol=1e-4)
    recon = basis.inverse_transform(basis.transform(patches, frames))
    np.testing.assert_allclose(recon, patches[frames].astype(np.float32), atol=2e-2)
    coefs = basis.transform(patches, frames[:4])
    np.testing.assert_allclose(basis.pooled(coefs), basis.inverse_transform(coefs).mean(1), atol=1e-4)
    np.testing.assert_allclose(mean_patch(patches, frames), patches[frames].astype(np.float64).mean(0), atol=1e-3)


@pytest.fixture(scope="module")
def task():
    ds, targets = synthetic_problem()
    split = make_split("repeats", 6, 120, seed=0, val_fraction=0.2, test_fraction=0.2)
    return make_task(ds, targets, split, Budget(max_steps=60, validate_every=20, patience=2, batch_size=32),
                     basis_components=24)


def _r10(task, cell):
    frames = cell.test_pairs[:, 1]
    sims = centred_cosine(cell.predicted, task.targets.patches, mean_patch(task.targets.patches, task.split.train_frames))
    ident = identify(sims, frames, np.arange(task.targets.n_frames))
    return ident.r10.mean(), ident.r10_chance.mean()


@pytest.mark.parametrize("method", [RidgeMethod(), MLPMethod(hidden=64), PCAKNNMethod(16, 5)], ids=lambda m: m.name)
def test_methods_beat_chance_under_one_budget(task, method):
    budget = Budget(max_steps=60, validate_every=20, patience=2, batch_size=32)
    assert isinstance(method, BenchmarkMethod)
    cell = run_cell(method, task, budget, seed=0, test_pairs=task.split.test)
    r10, chance = _r10(task, cell)
    assert r10 > 5 * chance, method.name
    assert cell.predicted.shape == (len(task.split.test), 16, 8) and cell.fit.n_parameters > 0
    if method.iterative:
        assert cell.fit.steps <= 60 and [s for s, _ in cell.fit.history] == list(range(20, cell.fit.steps + 1, 20))
    else:
        assert cell.fit.steps == 0 and cell.fit.stop_reason == "closed_form"
    assert math.isfinite(cell.fit.best_val_score)


def test_reruns_reproduce_exactly(task):
    budget = Budget(max_steps=40, validate_every=20, patience=2, batch_size=32)
    a = run_cell(MLPMethod(hidden=32), task, budget, seed=3, test_pairs=task.split.test[:50])
    b = run_cell(MLPMethod(hidden=32), task, budget, seed=3, test_pairs=task.split.test[:50])
    np.testing.assert_array_equal(a.predicted, b.predicted)
    assert a.fit.history == b.fit.history


def test_early_stopping_keeps_the_best_weights_and_stops_on_patience():
    scores = iter([0.1, 0.5, 0.4, 0.3, 0.9])
    state = {"w": 0}
    report = early_stopping_loop(lambda n: state.update(w=state["w"] + n), lambda: next(scores),
                                 lambda: state["w"], lambda w: state.update(w=w),
                                 Budget(max_steps=100, validate_every=10, patience=2))
    assert report.stop_reason == "early_stopping" and report.steps == 40 and report.best_step == 20
    assert state["w"] == 20 and report.best_val_score == 0.5
    with pytest.raises(ValueError, match="multiple"):
        Budget(max_steps=25, validate_every=10)


def test_knn_method_fails_on_shuffled_frame_labels(task):
    from dataclasses import replace

    rng = np.random.default_rng(0)
    # Every frame's target replaced by another frame's: labels shuffled, spike windows untouched.
    wrong = replace(task.targets, patches=task.targets.patches[rng.permutation(task.targets.n_frames)])
    shuffled = replace(task, targets=wrong, basis=fit_pca_basis(wrong.patches, task.split.train_frames, 24))
    cell = run_cell(PCAKNNMethod(16, 5), shuffled, Budget(), seed=0, test_pairs=task.split.test)
    r10, chance = _r10(task, cell)
    assert r10 < 3 * chance


def test_cebra_runs_through_the_real_package_under_the_budget(task):
    budget = Budget(max_steps=40, validate_every=20, patience=2, batch_size=32)
    method = CEBRAKNNMethod(8, batch_size=64, hidden=16, input_components=16, k=5)
    cell = run_cell(method, task, budget, seed=0, test_pairs=task.split.test[:40])
    assert cell.method == "CEBRA-8 + kNN" and cell.predicted.shape == (40, 16, 8)
    assert [s for s, _ in cell.fit.history] == [20, 40][: len(cell.fit.history)] and cell.fit.steps <= 40
    assert cell.fit.notes["contrastive_batch"] == 64 and not cell.answers_unseen_frames


def test_registry_builds_every_builtin_method():
    from neurrator.config import RunConfig

    config = RunConfig()
    for name in ("neurrator", "neurrator_checkpoint", "ridge", "mlp", "pca_knn", "cebra-128", "cebra-256", "cebra-512"):
        method = BENCHMARK_METHODS.create(name, config=config)
        assert isinstance(method, BenchmarkMethod), name
    assert pool_patches(np.ones((2, 3, 4))).shape == (2, 4)
