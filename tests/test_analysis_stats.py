"""Statistics and language pieces of the analyses: CIs, caches, log-odds, classifier, similarity."""

import numpy as np
import pytest
import torch
from test_analysis_fakes import bow_encode

from neurrator.analysis.common import (
    CachedEncoder,
    CachedNarrator,
    shared_words,
)
from neurrator.analysis.contrasts import concept_axes, log_odds_dirichlet, population_classifier
from neurrator.analysis.scaling import MetricSummary, ScalingPoint, crossing_point
from neurrator.analysis.similarity import narration_similarity


def test_cached_narrator_narrates_each_distinct_input_once():
    seen = []

    def narrate(p):
        seen.append(len(p))
        return [f"s{float(x[0, 0]):.0f}" for x in p]

    cached = CachedNarrator(narrate, "fake")
    p = torch.zeros(4, 2, 3)
    p[1] = 1.0
    assert cached(p) == ["s0", "s1", "s0", "s0"]
    assert cached(p[:2]) == ["s0", "s1"]
    assert seen == [2] and cached.hits == 4 and cached.calls == 6


def test_cached_encoder_reuses_embeddings():
    calls = []
    enc = CachedEncoder(lambda s: (calls.append(list(s)), bow_encode(s))[1])
    a = enc(["a cat", "a dog", "a cat"])
    b = enc(["a dog"])
    assert calls == [["a cat", "a dog"]]
    np.testing.assert_array_equal(a[1], b[0])


def _point(size, lo):
    return ScalingPoint(
        "p", size, str(size), 5, "", {"sbert": MetricSummary(lo + 0.05, lo, lo + 0.1, [])}
    )


def test_crossing_point_is_smallest_n_with_ci_above_floor():
    points = [
        _point(1, 0.1),
        _point(10, 0.29),
        _point(30, 0.31),
        _point(100, 0.25),
        _point(300, 0.4),
    ]
    assert crossing_point(points, "sbert", 0.3) == 30
    assert crossing_point(points, "sbert", 0.5) is None


def test_log_odds_finds_distinctive_words_and_matches_formula():
    texts = {
        "A": ["a red car in the street"] * 6 + ["a dark room"] * 2,
        "B": ["a dark room with a shadow"] * 6 + ["a red car"] * 2,
    }
    out = log_odds_dirichlet(texts, prior_scale=1.0, top=3)
    assert out["A"][0].word in {"car", "street", "red"} and out["B"][0].word in {
        "shadow",
        "room",
        "dark",
    }
    assert all(w.z > 0 for ws in out.values() for w in ws)
    # Recompute "street" for A by hand (prior = counts over both populations).
    n_a = 6 * 3 + 2 * 2  # content words: "red car street" ×6, "dark room" ×2
    n_b = 6 * 3 + 2 * 2  # "dark room shadow" ×6, "red car" ×2
    y_a, y_b = 6, 0
    alpha, alpha0 = 6.0, n_a + n_b  # prior: the word's count over both populations
    delta = np.log((y_a + alpha) / (n_a + alpha0 - y_a - alpha)) - np.log(
        (y_b + alpha) / (n_b + alpha0 - y_b - alpha)
    )
    z = delta / np.sqrt(1 / (y_a + alpha) + 1 / (y_b + alpha))
    street = next(w for w in out["A"] if w.word == "street")
    assert street.z == pytest.approx(z)


def test_classifier_separates_distinct_populations_and_not_random_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 8))
    y = np.repeat(["PV", "SST", "VIP"], 20)
    x[y == "PV", 0] += 4
    x[y == "SST", 1] += 4
    good = population_classifier(x, y, folds=5, n_permutations=19, seed=0)
    assert good.accuracy > 0.9 and good.p_value <= 0.05 and good.chance == pytest.approx(1 / 3)
    bad = population_classifier(rng.normal(size=(60, 8)), y, folds=5, n_permutations=19, seed=0)
    assert bad.accuracy < 0.6 and bad.p_value > 0.05


def test_concept_axes_average_repeats_and_smooth():
    frames = np.array([0, 1, 2, 0, 1, 2])
    narr = {"A": ["a car", "a dark room", "a car"] * 2, "B": ["a dark room"] * 6}
    axes = concept_axes(narr, frames, ["a car", "a dark room"], bow_encode, smooth_frames=0)
    car = axes[0]
    assert car.frames == [0, 1, 2]
    assert car.raw["A"][0] == pytest.approx(1.0) and car.raw["A"][0] > car.raw["A"][1]
    assert car.mean["A"] > car.mean["B"]
    smooth = concept_axes(narr, frames, ["a car"], bow_encode, smooth_frames=2.0)[0]
    assert np.ptp(smooth.smoothed["A"]) < np.ptp(smooth.raw["A"])


def test_similarity_of_identical_narrations_is_one_and_above_floor():
    frames = np.array([0, 1, 2, 3, 0, 1, 2, 3])
    caps = ["a car", "a dark room", "a cat on a table", "a person walking"]
    narr = {
        "A": [caps[f] for f in frames],
        "B": [caps[f] for f in frames],
        "C": ["a cat on a table"] * 8,
    }
    r = narration_similarity(narr, bow_encode, frames, n_shuffles=10)
    m = np.asarray(r.matrix)
    assert m[0, 1] == pytest.approx(1.0) and m[0, 0] == pytest.approx(1.0)
    assert r.floor < 0.9 and m[0, 2] < m[0, 1]


def test_shared_words():
    assert shared_words(["a red car", "the red bus", "red car parked"], n=2) == ["red", "car"]


def test_crossing_point_ignores_float_round_off_above_a_zero_floor():
    # A constant narration's SBERT gain is 0 up to round-off (seen: 2.6e-9); that is no crossing.
    points = [_point(1, 2.6e-9), _point(10, 0.02)]
    assert crossing_point(points, "sbert", 0.0) == 10
