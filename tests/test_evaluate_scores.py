"""Sentence scores, floors and statistics (a fast bag-of-words scorer stands in for SBERT)."""

import hashlib

import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.evaluate.scores import (
    ReferenceBank,
    bootstrap_ci,
    load_word_salad,
    score_windows,
    summarize_scores,
    wilcoxon_test,
)


class BagOfWordsScorer:
    """Deterministic hashed bag-of-words embeddings: shared words → high cosine."""

    name = "bag-of-words"

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.calls: list[list[str]] = []

    def encode(self, sentences):
        self.calls.append(list(sentences))
        out = np.zeros((len(sentences), self.dim), dtype=np.float32)
        for i, s in enumerate(sentences):
            for w in s.lower().split():
                out[i, int(hashlib.md5(w.encode()).hexdigest(), 16) % self.dim] += 1
            out[i, -1] += 0.1  # never a zero vector
        return out / np.linalg.norm(out, axis=1, keepdims=True)


TOPICS = ["cat sofa fur", "car street wheel", "tree forest leaves", "boat harbour water", "dog park ball"]


def _movie(n_frames=50, frames_per_shot=10):
    shot_of_frame = np.arange(n_frames) // frames_per_shot
    captions = {f: [f"a photo of {TOPICS[s]}", f"the {TOPICS[s].split()[0]} here"] for f, s in enumerate(shot_of_frame)}
    return captions, shot_of_frame


def test_bundled_word_salad_pool_has_30_distinct_sentences():
    pool = load_word_salad()
    assert len(pool) == 30 and len(set(pool)) == 30


def test_word_salad_override_is_validated(tmp_path):
    bad = tmp_path / "salad.json"
    bad.write_text('{"sentences": [""]}')
    with pytest.raises(InputError, match="salad.json"):
        load_word_salad(bad)
    good = tmp_path / "ok.json"
    good.write_text('["one two", "three four"]')
    assert load_word_salad(good) == ["one two", "three four"]


def test_correct_narrations_beat_every_control():
    captions, shots = _movie()
    frames = np.repeat(np.arange(50), 3)
    narrations = [f"a {TOPICS[shots[f]]}" for f in frames]
    scores = score_windows(narrations, frames, captions, BagOfWordsScorer(), word_salad=load_word_salad(), shot_of_frame=shots, seed=1)
    assert len(scores) == len(frames)
    for control in ("shuffled", "word_salad", "random_caption"):
        assert scores["matched"].mean() > scores[control].mean() + 0.2
    assert (scores["matched_max"] >= scores["matched"] - 1e-6).all()
    summary = summarize_scores(scores, shot_of_frame=shots, n_bootstrap=200, seed=0)
    assert summary["tests"]["matched_vs_shuffled"]["frame"]["p_value"] < 1e-6
    assert summary["tests"]["matched_vs_shuffled"]["frame"]["n"] == 50
    assert summary["tests"]["matched_vs_shuffled"]["shot"]["n"] == 5
    assert summary["unique_sentence_fraction"] == pytest.approx(5 / 150)
    s = summary["scores"]["matched"]
    assert s["ci_low"] <= s["mean"] <= s["ci_high"]


def test_random_caption_and_shuffle_never_use_the_same_shot():
    captions, shots = _movie(n_frames=60, frames_per_shot=12)
    frames = np.arange(60).repeat(2)
    scores = score_windows(["anything"] * len(frames), frames, captions, BagOfWordsScorer(), word_salad=["x y", "z w"], shot_of_frame=shots, seed=3)
    assert (shots[scores["random_caption_frame"]] != shots[frames]).all()
    assert (shots[scores["shuffled_frame"]] != shots[frames]).all()
    # Without shots, "another frame" is the rule.
    scores = score_windows(["anything"] * len(frames), frames, captions, BagOfWordsScorer(), word_salad=["x y", "z w"], seed=3)
    assert (scores["random_caption_frame"] != frames).all() and (scores["shuffled_frame"] != frames).all()


def test_scores_are_seeded():
    captions, shots = _movie()
    frames = np.arange(50)
    args = (["a cat"] * 50, frames, captions, BagOfWordsScorer())
    a = score_windows(*args, word_salad=load_word_salad(), shot_of_frame=shots, seed=5)
    b = score_windows(*args, word_salad=load_word_salad(), shot_of_frame=shots, seed=5)
    c = score_windows(*args, word_salad=load_word_salad(), shot_of_frame=shots, seed=6)
    assert a.equals(b) and not a["random_caption_frame"].equals(c["random_caption_frame"])


def test_reference_bank_encodes_each_caption_once():
    captions, _ = _movie()
    scorer = BagOfWordsScorer()
    bank = ReferenceBank(captions, scorer)
    assert len(scorer.calls) == 1 and len(scorer.calls[0]) == 100
    score_windows(["a cat"] * 5, np.arange(5), bank, scorer, word_salad=["x y", "z w"])
    assert all(len(call) < 100 for call in scorer.calls[1:])


def test_missing_reference_caption_is_an_error():
    captions, _ = _movie()
    with pytest.raises(ValueError, match="no reference caption"):
        score_windows(["a"], np.array([999]), captions, BagOfWordsScorer(), word_salad=["x y", "z w"])


def test_wilcoxon_detects_a_planted_shift_and_not_noise():
    rng = np.random.default_rng(0)
    base = rng.normal(size=200)
    shifted = wilcoxon_test(base + 0.3 + rng.normal(scale=0.5, size=200), base)
    assert shifted.p_value < 1e-6 and shifted.rank_biserial > 0.3
    null = wilcoxon_test(base + rng.normal(scale=0.5, size=200), base)
    assert null.p_value > 0.01
    flat = wilcoxon_test(base, base)
    assert np.isnan(flat.p_value) and flat.rank_biserial == 0.0


def test_frame_level_test_is_less_confident_than_window_level():
    # 10 frames × 30 repeats, a per-frame effect that is zero on average across frames.
    rng = np.random.default_rng(1)
    frame_effect = np.linspace(-0.5, 0.6, 10)
    frames = np.repeat(np.arange(10), 30)
    matched = frame_effect[frames] + rng.normal(scale=0.05, size=300)
    import pandas as pd

    table = pd.DataFrame({"frame": frames, "matched": matched, "shuffled": np.zeros(300)})
    summary = summarize_scores(table, n_bootstrap=200)
    tests = summary["tests"]["matched_vs_shuffled"]
    assert tests["window"]["p_value"] < tests["frame"]["p_value"]
    assert tests["frame"]["p_value"] > 0.05


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(2)
    small_sample, large_sample = rng.normal(1.0, 1.0, 20), rng.normal(1.0, 1.0, 2000)
    small = bootstrap_ci(small_sample, n_resamples=500, seed=0)
    large = bootstrap_ci(large_sample, n_resamples=500, seed=0)
    assert large[0] < large_sample.mean() < large[1]
    assert small[0] < small_sample.mean() < small[1]
    assert (large[1] - large[0]) < (small[1] - small[0])
