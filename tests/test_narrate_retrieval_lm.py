"""The retrieval+lm narrator with the real SmolLM2-135M-Instruct (loaded once per session)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurrator.narrate import CaptionBank, NarrateConfig, build_narrator, one_sentence
from neurrator.narrate.retrieval_lm import caption_weights, load_language_model

SHOTS = ["a car parked in a dark garage", "a dog running on a sandy beach", "a man reading a newspaper on a bench"]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("a car parked in a garage. It is dark.", "A car parked in a garage."),
        ('Sure! Here is a caption: "A dog runs on the beach"', "A dog runs on the beach."),
        ("  **A man reads**\n on a bench!  More text", "A man reads on a bench!"),
        ("A tall pagoda among trees (30%). Next", "A tall pagoda among trees."),
        ("", "Fallback caption."),
    ],
)
def test_one_sentence_cleans_lm_answers(answer, expected):
    assert one_sentence(answer, fallback="fallback caption") == expected


def test_caption_weights_are_normalised_and_rounded():
    np.testing.assert_allclose(caption_weights(np.array([0.6, 0.3, 0.1]), 1), [0.6, 0.3, 0.1])
    np.testing.assert_allclose(caption_weights(np.array([0.9, 0.0, -0.2]), 1), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(caption_weights(np.array([-0.5, -0.1]), 2), [0.5, 0.5])


@pytest.fixture(scope="session")
def smollm2():
    pytest.importorskip("gguf")
    return load_language_model()


def _shot_bank():
    """Three shots of four frames each; every shot is well separated in patch space."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 4, 8)) * 3
    patches = np.concatenate([centres[s] + 0.1 * rng.normal(size=(4, 4, 8)) for s in range(3)]).astype(np.float16)
    captions = {f: [SHOTS[f // 4]] for f in range(12)}
    return patches, CaptionBank.from_training_frames(patches, captions, train_frames=np.arange(12))


def test_retrieval_lm_writes_one_sentence_per_window_and_caches_identical_inputs(smollm2):
    patches, bank = _shot_bank()
    # Every caption agrees (cosine ≥ -1), so the LM fuses every window's two captions.
    config = NarrateConfig(narrator="retrieval+lm", top_k=2, lm_max_new_tokens=20, batch_size=4, agree_cosine=-1.0)
    narrator = build_narrator(config, bank=bank)
    assert narrator.lm is smollm2, "the LM is loaded once per process"
    assert narrator.is_stand_in and "SmolLM2" in narrator.description

    # Windows 0-2 and 3-4 come from two shots; within a shot the LM input is identical.
    windows = torch.from_numpy(patches[[0, 1, 2, 4, 5]].astype(np.float32))
    inputs = narrator.lm_inputs(narrator.retriever.retrieve(windows, k=narrator.top_k))
    sentences = narrator.narrate(windows)
    assert len(sentences) == 5 and narrator.n_generated == len(set(inputs))
    for s in sentences:
        assert s[0].isupper() and s.endswith((".", "!", "?")) and s.count(". ") == 0
    assert sentences[0] == sentences[1] == sentences[2] and sentences[3] == sentences[4]
    assert sentences[0] != sentences[3]

    generated = narrator.n_generated
    assert narrator.narrate(windows.flip(0)) == sentences[::-1]  # all cached: deterministic, no new generation
    assert narrator.n_generated == generated


class _NoLM:
    """A language model that must never be asked (every window is verbatim)."""

    name = "none"

    @property
    def tokenizer(self):
        raise AssertionError("the LM was used")


def test_captions_that_disagree_are_never_fused():
    from neurrator.narrate.retrieval import RetrievalNarrator
    from neurrator.narrate.retrieval_lm import RetrievalLMNarrator

    patches, bank = _shot_bank()
    words = {"car": 0, "dog": 1, "man": 2}
    def encode(texts):  # one axis per subject: captions of different shots are orthogonal
        out = np.zeros((len(texts), 3), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, next(v for w, v in words.items() if w in t)] = 1.0
        return out

    narrator = RetrievalLMNarrator(RetrievalNarrator(bank), _NoLM(), top_k=2, encode=encode, agree_cosine=0.6)
    windows = torch.from_numpy(patches[[0, 5, 9]].astype(np.float32))
    retrieved = narrator.retriever.retrieve(windows, k=2)
    assert all(len(c) == 2 for c in retrieved.captions)  # two distinct captions were retrieved ...
    assert [len(i) for i in narrator.lm_inputs(retrieved)] == [1, 1, 1]  # ... but they disagree
    plain = RetrievalNarrator(bank).narrate(windows)
    assert narrator.narrate(windows) == plain == [SHOTS[0], SHOTS[1], SHOTS[2]]  # exactly the retrieval narrator
    assert narrator.n_generated == 0 and narrator.n_verbatim == 3

    # Same shot (group) agrees even when the embeddings do not.
    grouped = RetrievalLMNarrator(RetrievalNarrator(bank), _NoLM(), top_k=2, encode=encode,
                                  groups=np.zeros(len(bank), dtype=int))
    assert [len(i) for i in grouped.lm_inputs(retrieved)] == [2, 2, 2]
