"""Baselines on a small synthetic problem with a planted spike → target relation."""

import numpy as np
import pandas as pd
import pytest

from neurrator.evaluate.baselines import (
    PCAKNN,
    TargetBasis,
    run_feature_baselines,
    window_features,
)
from neurrator.evaluate.embedding import embedding_metrics
from neurrator.preprocess.types import NeuralDataset, ZScoreStats


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
    return ds, patches


def test_window_features_average_chunks():
    ds, _ = synthetic_problem()
    pairs = np.array([[0, 5], [3, 100]])
    f = window_features(ds, pairs, n_chunks=2)
    w = ds.windows(pairs)
    assert f.shape == (2, 2 * ds.n_units)
    np.testing.assert_allclose(f[:, : ds.n_units], w[:, :10].mean(1), rtol=1e-5)
    np.testing.assert_allclose(f[:, ds.n_units :], w[:, 10:].mean(1), rtol=1e-5)


def test_target_basis_is_orthonormal_and_reconstructs_training_frames():
    _, patches = synthetic_problem()
    frames = np.arange(0, 120, 2)
    basis = TargetBasis(n_components=200, patch_chunk=5).fit(patches, frames)
    assert 6 <= basis.components_.shape[0] <= len(frames) - 1
    gram = basis.components_ @ basis.components_.T
    np.testing.assert_allclose(gram[:6, :6], np.eye(6), atol=1e-4)
    recon = basis.inverse_transform(basis.transform(patches, frames))
    np.testing.assert_allclose(recon, patches[frames].astype(np.float32), atol=2e-2)
    coefs = basis.transform(patches, frames[:4])
    np.testing.assert_allclose(basis.pooled(coefs), basis.inverse_transform(coefs).mean(1), atol=1e-4)


@pytest.fixture(scope="module")
def split_problem():
    ds, patches = synthetic_problem()
    train = np.array([(r, f) for r in range(5) for f in range(120)])
    test = np.array([(5, f) for f in range(120)])
    basis = TargetBasis(n_components=24).fit(patches, np.arange(120))
    x_train, x_test = window_features(ds, train), window_features(ds, test)
    return ds, patches, train, test, basis, x_train, x_test


def test_regression_and_knn_baselines_beat_chance(split_problem):
    _ds, patches, train, test, basis, x_train, x_test = split_problem
    coefs = basis.transform(patches, train[:, 1])
    results = run_feature_baselines(["ridge", "mlp", "pca_knn"], x_train, train[:, 1], x_test, basis, coefs,
                                    mlp_epochs=8, mlp_hidden=64, pca_components=16, knn_k=5)
    pooled_targets = patches.astype(np.float32).mean(1)
    for r in results:
        m = embedding_metrics(r.pooled, test[:, 1], pooled_targets, frame_rate=30.0)
        assert m["r10"] > 5 * m["r10_chance"], r.name
        assert m["cka"] > 0.5, r.name
        assert r.n_parameters > 0
    knn = next(r for r in results if r.name == "PCA + kNN")
    assert np.mean(np.abs(knn.voted_frames - test[:, 1]) <= 30) > 0.8


def test_knn_baseline_fails_on_shuffled_frame_labels(split_problem):
    _ds, patches, train, test, basis, x_train, x_test = split_problem
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(train[:, 1])
    model = PCAKNN(16, 5).fit(x_train, shuffled, basis.transform(patches, shuffled))
    voted, _ = model.predict(x_test)
    assert np.mean(voted == test[:, 1]) < 0.05


def test_cebra_runs_through_the_real_package(split_problem):
    _ds, patches, train, _test, basis, x_train, x_test = split_problem
    coefs = basis.transform(patches, train[:, 1])
    (result,) = run_feature_baselines(["cebra"], x_train, train[:, 1], x_test, basis, coefs, cebra_dims=(8,),
                                      cebra_iterations=40, cebra_batch_size=128, cebra_hidden=16, knn_k=5)
    assert result.name == "CEBRA-8 + kNN" and result.pooled.shape == (120, 8)
    assert result.voted_frames.shape == (120,) and result.notes["iterations"] == 40
    assert result.n_parameters > 0
