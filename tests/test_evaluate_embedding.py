"""Embedding-level metrics: CKA, kNN purity, retrieval ranks, frame identification."""

import numpy as np
import pytest

from neurrator.core.linalg import pool_patches
from neurrator.evaluate.embedding import (
    centred_cosine,
    identify,
    knn_purity,
    linear_cka,
    same_group,
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
    targets = rng.normal(size=(100, 4, 8)).astype(np.float32)
    frames = np.array([5, 17, 99, 0, 42])
    sims = centred_cosine(targets[frames], targets, targets.mean(0))
    m = identify(sims, frames, np.arange(100), tolerance_frames=30).summary()
    assert m["r1"] == 1.0 and m["r10"] == 1.0 and m["median_rank"] == 1.0 and m["within_tol"] == 1.0
    assert m["r1_chance"] == pytest.approx(0.01) and m["r10_chance"] == pytest.approx(0.1)
    assert linear_cka(targets[frames], targets[frames] * 2) == pytest.approx(1.0)


def test_centred_cosine_matches_the_flattened_definition_in_chunks():
    rng = np.random.default_rng(8)
    a, b, mu = rng.normal(size=(6, 5, 3)), rng.normal(size=(9, 5, 3)), rng.normal(size=(5, 3))
    fa, fb = (a - mu).reshape(6, -1), (b - mu).reshape(9, -1)
    expected = (fa / np.linalg.norm(fa, axis=1, keepdims=True)) @ (fb / np.linalg.norm(fb, axis=1, keepdims=True)).T
    np.testing.assert_allclose(centred_cosine(a, b, mu, patch_chunk=2), expected, rtol=1e-5, atol=1e-6)


def test_full_patch_readout_keeps_spatial_layout_that_pooling_loses():
    # Two frames with the same pooled vector but different layouts: only the full readout tells them apart.
    targets = np.zeros((2, 2, 3), dtype=np.float32)
    targets[0, 0, 0] = targets[1, 1, 0] = 1.0
    full = identify(centred_cosine(targets, targets), np.array([0, 1]), np.arange(2))
    pooled = identify(centred_cosine(targets.mean(1), targets.mean(1)), np.array([0, 1]), np.arange(2))
    assert full.r1.mean() == 1.0 and pooled.r1.mean() == 0.0  # ties count against the prediction


def test_constant_prediction_is_not_ranked_first():
    rng = np.random.default_rng(4)
    targets = rng.normal(size=(50, 8)).astype(np.float32)
    # The mean target (the "mean training patch" control) is uninformative: all cosines tie.
    predicted = np.tile(targets.mean(0), (10, 1))
    ident = identify(centred_cosine(predicted, targets, targets.mean(0)), np.arange(10), np.arange(50))
    assert (ident.rank == 50).all()


def test_random_predictions_rank_near_chance():
    rng = np.random.default_rng(5)
    targets = rng.normal(size=(900, 64)).astype(np.float32)
    frames = rng.integers(0, 900, size=2000)
    m = identify(centred_cosine(rng.normal(size=(2000, 64)), targets), frames, np.arange(900), tolerance_frames=30)
    s = m.summary()
    assert s["r1"] < 0.01 and 350 < s["median_rank"] < 550
    assert abs(s["within_tol"] - s["within_tol_chance"]) < 0.03


def test_frame_identification_tolerance_and_chance_from_the_candidate_set():
    targets = np.eye(100, dtype=np.float32)
    frames = np.array([10, 50])
    sims = centred_cosine(targets[[35, 90]], targets)  # 25 frames off (hit within 1 s), 40 frames off (miss)
    m = identify(sims, frames, np.arange(100), tolerance_frames=30)
    assert m.r1.mean() == 0.0 and m.within_tol.mean() == 0.5
    # Chance of ±30 frames around frame 10 among 100 candidates: frames 0..40 → 41/100.
    assert m.within_tol_chance[0] == pytest.approx(0.41)


def test_within_shot_identification_cannot_be_passed_by_a_shot_lookup():
    shots = np.repeat(np.arange(4), 25)
    rng = np.random.default_rng(9)
    targets = rng.normal(size=(4, 16))[shots] + 0.05 * rng.normal(size=(100, 16))
    frames = np.arange(0, 100, 3)
    shot_mean = np.stack([targets[shots == s].mean(0) for s in range(4)])[shots[frames]]  # knows only the shot
    sims = centred_cosine(shot_mean, targets, targets.mean(0))
    everywhere = identify(sims, frames, np.arange(100), tolerance_frames=30)
    within = identify(sims, frames, np.arange(100), allowed=same_group(frames, np.arange(100), shots))
    assert everywhere.within_tol.mean() > 0.6  # ±1 s is nearly passed by knowing the shot
    assert within.r1.mean() < 0.2 and within.r1_chance.mean() == pytest.approx(1 / 25)


def test_knn_purity_perfect_and_random():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, 16))
    assert knn_purity(x, 2 * x, k=10) == 1.0
    assert knn_purity(rng.normal(size=(300, 16)), x, k=10) < 0.1


def test_pool_patches_batches_match_mean():
    x = np.random.default_rng(7).normal(size=(7, 5, 3)).astype(np.float16)
    np.testing.assert_allclose(pool_patches(x, batch_size=2), x.astype(np.float32).mean(1), rtol=1e-6)
