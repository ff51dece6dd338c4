"""The one statistics module: intervals, block bootstrap, paired tests, Holm, permutation chance."""

import numpy as np
import pytest
from scipy import stats as sp

from neurrator.evaluate.embedding import linear_cka
from neurrator.evaluate.stats import (
    block_bootstrap_ci,
    block_ids,
    block_means,
    bootstrap_ci,
    holm,
    paired_test,
    permutation_chance,
    t_interval,
)


def test_block_ids_shots_then_seconds_then_images():
    frames = np.array([0, 29, 30, 61, 899])
    shots = np.repeat(np.arange(9), 100)
    assert block_ids(frames, shot_of_frame=shots).tolist() == [0, 0, 0, 0, 8]
    assert block_ids(frames, frame_rate=30.0).tolist() == [0, 0, 1, 2, 29]
    assert block_ids(frames, frame_rate=30.0, block_seconds=2.0).tolist() == [0, 0, 0, 1, 14]
    assert block_ids(frames).tolist() == frames.tolist()


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(2)
    small_sample, large_sample = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    small = bootstrap_ci(small_sample, n_resamples=500, seed=0)
    large = bootstrap_ci(large_sample, n_resamples=500, seed=0)
    assert large.low < large_sample.mean() < large.high and small.low < small_sample.mean() < small.high
    assert large.width < small.width and large.n_blocks == 2000
    constant = bootstrap_ci(np.full(5, 0.3))
    assert constant.degenerate and not constant.above(0.0)


def test_block_bootstrap_is_wider_than_iid_for_correlated_windows():
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(20), 30)
    values = rng.normal(size=20)[blocks] + rng.normal(scale=0.1, size=600)  # strong within-block correlation
    iid = bootstrap_ci(values, n_resamples=500)
    blocked = block_bootstrap_ci(values, blocks, n_resamples=500)
    assert blocked.mean == pytest.approx(values.mean())
    assert blocked.width > 3 * iid.width and blocked.n_blocks == 20
    assert block_bootstrap_ci(values, np.zeros(600)).degenerate  # one block: no interval


def test_block_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(100):
        blocks = np.repeat(np.arange(30), 10)
        values = rng.normal(size=30)[blocks] + rng.normal(scale=0.5, size=300)
        hits += block_bootstrap_ci(values, blocks, n_resamples=400, seed=int(rng.integers(1e6))).low < 0 < \
            block_bootstrap_ci(values, blocks, n_resamples=400).high
    assert 85 <= hits <= 100


def test_t_interval_matches_student_t():
    x = np.array([0.1, 0.3, 0.2, 0.5, 0.4])
    ci = t_interval(x, level=0.95)
    half = sp.t.ppf(0.975, 4) * x.std(ddof=1) / np.sqrt(5)
    assert ci.mean == pytest.approx(0.3) and ci.low == pytest.approx(0.3 - half) and ci.high == pytest.approx(0.3 + half)
    assert t_interval([0.2, 0.2]).degenerate


def test_paired_test_on_block_means():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    shifted = paired_test(base + 0.3 + rng.normal(scale=0.5, size=200), base)
    assert shifted.p_value < 1e-6 and shifted.rank_biserial > 0.3 and shifted.level == "window"
    assert paired_test(base + rng.normal(scale=0.5, size=200), base).p_value > 0.01
    flat = paired_test(base, base)
    assert np.isnan(flat.p_value) and flat.rank_biserial == 0.0
    blocks = np.repeat(np.arange(8), 25)
    test = paired_test(base + 0.3, base, blocks)
    assert test.level == "block" and test.n_blocks == 8 and test.n_windows == 200
    assert test.p_value == pytest.approx(2 / 2**8)  # exact two-sided p of 8 positive block differences
    np.testing.assert_allclose(block_means(np.arange(6.0), np.array([1, 1, 0, 0, 2, 2])), [2.5, 0.5, 4.5])


def test_holm_matches_the_definition():
    p = np.array([0.01, 0.04, 0.03, np.nan, 0.5])
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, np.nan, 0.5])
    assert (holm([0.9, 0.8]) <= 1).all()


def test_permutation_chance_of_cka_is_far_above_zero_for_wide_random_data():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(240, 64)), rng.normal(size=(240, 64))
    chance = permutation_chance(linear_cka, x, y, n_permutations=100, seed=0)
    assert 0.18 < chance.null_mean < 0.25 and chance.value > chance.null_mean  # the 0.21, not "0"
    assert chance.p_value(linear_cka(x, y)) > 0.05
    assert chance.p_value(1.0) == pytest.approx(1 / 101)
    blocked = permutation_chance(linear_cka, x, x, n_permutations=100, blocks=np.repeat(np.arange(24), 10))
    assert blocked.method == "blocks" and blocked.value < 0.5
