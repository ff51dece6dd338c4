"""Embedding-level metrics: CKA, kNN purity, retrieval ranks, frame identification."""

import numpy as np
import pytest

from neurrator.evaluate.embedding import (
    chance_within_tolerance,
    embedding_metrics,
    knn_purity,
    linear_cka,
    pool_patches,
    retrieval_ranks,
)


def test_cka_identical_rotated_and_scaled_is_one():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)


def test_cka_independent_random_is_near_zero():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2000, 8)), rng.normal(size=(2000, 8))
    assert linear_cka(x, y) < 0.05


def test_cka_gram_and_feature_forms_agree():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 10)), rng.normal(size=(30, 10))
    wide_x, wide_y = np.hstack([x, np.zeros((30, 40))]), np.hstack([y, np.zeros((30, 40))])
    assert linear_cka(x, y) == pytest.approx(linear_cka(wide_x, wide_y))


def test_perfect_predictions_retrieve_every_frame():
    rng = np.random.default_rng(3)
    targets = rng.normal(size=(100, 32)).astype(np.float32)
    frames = np.array([5, 17, 99, 0, 42])
    m = embedding_metrics(targets[frames], frames, targets, frame_rate=30.0)
    assert m["r1"] == 1.0 and m["r10"] == 1.0 and m["median_rank"] == 1.0
    assert m["frame_id_within_tol"] == 1.0
    assert m["cka"] == pytest.approx(1.0)
    assert m["r1_chance"] == pytest.approx(0.01)


def test_constant_prediction_is_not_ranked_first():
    rng = np.random.default_rng(4)
    targets = rng.normal(size=(50, 8)).astype(np.float32)
    # The mean target (the "mean training patch" control) is uninformative: all cosines tie.
    predicted = np.tile(targets.mean(0), (10, 1))
    ranks, _ = retrieval_ranks(predicted, targets, np.arange(10), center=True)
    assert (ranks == 50).all()
    ranks, _ = retrieval_ranks(np.zeros((10, 8)), targets, np.arange(10), center=False)
    assert (ranks == 50).all()


def test_random_predictions_rank_near_chance():
    rng = np.random.default_rng(5)
    targets = rng.normal(size=(900, 64)).astype(np.float32)
    frames = rng.integers(0, 900, size=2000)
    m = embedding_metrics(rng.normal(size=(2000, 64)), frames, targets, frame_rate=30.0)
    assert m["r1"] < 0.01
    assert 350 < m["median_rank"] < 550
    assert abs(m["frame_id_within_tol"] - m["frame_id_within_tol_chance"]) < 0.03
    assert m["tolerance_frames"] == 30


def test_frame_identification_tolerance_counts_near_misses():
    targets = np.eye(100, dtype=np.float32)
    frames = np.array([10, 50])
    predicted = targets[[35, 90]]  # 25 frames off (hit within 1 s), 40 frames off (miss)
    m = embedding_metrics(predicted, frames, targets, frame_rate=30.0, tolerance_s=1.0)
    assert m["r1"] == 0.0 and m["frame_id_within_tol"] == 0.5
    assert chance_within_tolerance(np.array([0]), 100, 30) == pytest.approx(0.31)


def test_knn_purity_perfect_and_random():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 16))
    assert knn_purity(x, 2 * x, k=10) == 1.0
    assert knn_purity(rng.normal(size=(300, 16)), x, k=10) < 0.1


def test_pool_patches_batches_match_mean():
    x = np.random.default_rng(7).normal(size=(7, 5, 3)).astype(np.float16)
    np.testing.assert_allclose(pool_patches(x, batch_size=2), x.astype(np.float32).mean(1), rtol=1e-6)
