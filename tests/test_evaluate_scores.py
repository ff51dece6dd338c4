"""Sentence scores, floors and statistics (a fast bag-of-words scorer stands in for SBERT)."""

import hashlib

import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.evaluate.scores import (
    ReferenceBank,
    copy_flags,
    heldout_caption_split,
    heldout_scores,
    load_released_pool,
    load_word_salad,
    released_scores,
    score_windows,
    summarize_scores,
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
    test = summary["tests"]["matched_vs_shuffled"]
    assert test["level"] == "block" and test["n_blocks"] == 5  # shots are the blocks
    assert test["p_value"] == pytest.approx(0.0625)  # the smallest two-sided p of 5 pairs: honest, not 1e-90
    assert test["p_holm"] >= test["p_value"] and test["rank_biserial"] == 1.0
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


def test_block_level_test_is_less_confident_than_treating_windows_as_independent():
    # 10 frames × 30 repeats, a per-frame effect that is zero on average across frames.
    rng = np.random.default_rng(1)
    frame_effect = np.linspace(-0.5, 0.6, 10)
    frames = np.repeat(np.arange(10), 30)
    matched = frame_effect[frames] + rng.normal(scale=0.05, size=300)
    import pandas as pd

    from neurrator.evaluate.stats import paired_test

    table = pd.DataFrame({"frame": frames, "matched": matched, "shuffled": np.zeros(300)})
    summary = summarize_scores(table, n_bootstrap=200)  # no shots, no frame rate: blocks = frames
    block = summary["tests"]["matched_vs_shuffled"]
    assert block["n_blocks"] == 10 and block["p_value"] > 0.05
    assert paired_test(matched, np.zeros(300)).p_value < block["p_value"]


def test_released_script_scores_on_a_three_frame_fixture_computed_by_hand():
    """Three windows, orthogonal one-hot 'embeddings': every cosine is 0 or 1 by hand."""

    vocab = {"a cat": 0, "a dog": 1, "a car": 2, "salad one": 3, "salad two": 4, "cat again": 0}

    class OneHot:
        def encode(self, sentences):
            out = np.zeros((len(sentences), 5), dtype=np.float32)
            for i, s in enumerate(sentences):
                out[i, vocab[s]] = 1.0
            return out

    captions = {0: ["a cat", "a dog"], 1: ["a dog"], 2: ["a car"]}
    narrations = ["cat again", "a car", "a car"]  # right, wrong, right
    frames = np.array([0, 1, 2])
    pool = ["salad one", "salad two"]
    out = released_scores(narrations, frames, captions, OneHot(), pool, seed=0)
    # matched: first reference only (frame 0's "a cat"; its "a dog" is ignored).
    np.testing.assert_allclose(out["matched"], [1.0, 0.0, 1.0])
    # floor: mean over the pool of cos(narration, salad) = 0 for every window here.
    np.testing.assert_allclose(out["floor"], [0.0, 0.0, 0.0])
    # shuffled: one global permutation of the references, default_rng(seed).permutation(3).
    perm = np.random.default_rng(0).permutation(3)
    first = ["a cat", "a dog", "a car"]
    expected = [float(narrations[i].replace("cat again", "a cat") == first[perm[i]]) for i in range(3)]
    np.testing.assert_allclose(out["shuffled"], expected)
    # A floor pool that shares a narration's word counts, averaged over the 2 pool sentences.
    out = released_scores(["salad one"] * 3, frames, captions, OneHot(), pool, seed=0)
    np.testing.assert_allclose(out["floor"], [0.5, 0.5, 0.5])


def test_released_pool_is_the_scripts_thirty_sentences():
    pool = load_released_pool()
    assert len(pool) == 30 and len(set(pool)) == 30
    assert pool[0] == "Purple elephant denominator sandwich quintuple."


def test_heldout_caption_rule_never_rewards_copying():
    captions = {0: ["a cat on a sofa", "a tabby cat"], 1: ["a red car"], 2: ["a dog", "a dog in a park", "a ball"]}
    bank, held = heldout_caption_split(captions)
    assert bank == {0: ["a cat on a sofa"], 1: ["a red car"], 2: ["a dog", "a dog in a park"]}
    assert held == {0: "a tabby cat", 2: "a ball"}
    # Copying every caption the bank may hold never reproduces the held-out caption.
    scorer = BagOfWordsScorer()
    frames = np.array([0, 2])
    copies = [bank[0][0], bank[2][0]]
    out = heldout_scores(copies, frames, held, scorer, blocks=np.array([0, 1]), seed=0)
    assert (out["matched"] < 0.99).all()
    assert heldout_scores(["x"], np.array([1]), held, scorer, blocks=np.array([0])) is None
    assert copy_flags(["A red car.", "a blue car"], np.array([1, 1]), captions).tolist() == [True, False]
