"""The retrieval narrator and its caption bank: similarity, ordering and the leakage rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurrator.core.errors import InputError
from neurrator.narrate import CaptionBank, NarrateConfig, RetrievalNarrator, build_narrator, similarity


def _patches(n_frames=12, n_patches=6, dim=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n_frames, n_patches, dim)).astype(np.float16)


def _captions(n_frames=12) -> dict[int, list[str]]:
    return {f: [f"frame {f} caption", f"frame {f} paraphrase"] for f in range(n_frames)}


def test_similarity_matches_its_definition():
    rng = np.random.default_rng(1)
    q, b = rng.normal(size=(3, 5, 4)), rng.normal(size=(7, 5, 4))
    def cos(x, y): return x @ y / np.linalg.norm(x) / np.linalg.norm(y)
    expected = np.array([[0.3 * cos(qi.mean(0), bj.mean(0)) + 0.7 * np.mean([cos(qi[p], bj[p]) for p in range(5)])
                          for bj in b] for qi in q])
    got = similarity(torch.from_numpy(q).float(), b.astype(np.float32), pooled_weight=0.3)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_similarity_is_chunked_consistently(monkeypatch):
    import neurrator.narrate.retrieval as retrieval

    q, b = torch.randn(9, 4, 3), np.random.default_rng(2).normal(size=(11, 4, 3)).astype(np.float32)
    whole = similarity(q, b)
    monkeypatch.setattr(retrieval, "_CHUNK_FLOATS", 24)  # two rows per chunk
    torch.testing.assert_close(similarity(q, b), whole)


def test_nearest_training_frame_caption_is_returned():
    patches = _patches()
    bank = CaptionBank.from_training_frames(patches, _captions(), train_frames=np.arange(12))
    narrator = RetrievalNarrator(bank)
    query = torch.from_numpy(patches[[3, 7]].astype(np.float32)) + 0.01
    assert narrator.narrate(query) == ["frame 3 caption", "frame 7 caption"]  # first caption, deterministically
    retrieved = narrator.retrieve(query, k=3)
    assert retrieved.entries.shape == (2, 3) and np.all(np.diff(retrieved.scores, axis=1) <= 0)
    assert narrator.is_stand_in


def test_held_out_frame_is_never_in_the_bank_and_its_caption_never_returned():
    patches = _patches()
    held_out = np.array([2, 5, 9])
    train = np.setdiff1d(np.arange(12), held_out)
    bank = CaptionBank.from_training_frames(patches, _captions(), train_frames=train)
    assert not set(bank.frames.tolist()) & set(held_out.tolist())
    narrator = RetrievalNarrator(bank)
    # Query with the held-out frames' own (exact) patches: the best possible match is gone.
    retrieved = narrator.retrieve(torch.from_numpy(patches[held_out].astype(np.float32)), k=len(bank))
    returned = {c for row in retrieved.captions for c in row}
    assert not returned & {t for f in held_out for t in _captions()[f]}


def test_shot_level_captions_are_reachable_unless_strict():
    """Frames 0-3 form shot A, frames 4-7 shot B; both shots are described once for all their frames.
    Frame 6 is held out, but shot B has training frames, so its shot caption is legitimately reachable.
    Shot C (frames 8-11) is held out entirely: its caption is unreachable."""
    shots = {0: "shot A: a car in a garage", 1: "shot B: a dog on a beach", 2: "shot C: a tree in a field"}
    captions = {f: [shots[f // 4]] for f in range(12)}
    patches = _patches()
    train = np.array([0, 1, 2, 3, 4, 5, 7])
    held_out = np.array([6, 8, 9, 10, 11])

    narrator = RetrievalNarrator(CaptionBank.from_training_frames(patches, captions, train_frames=train))
    reachable = {c for row in narrator.retrieve(torch.from_numpy(patches[held_out].astype(np.float32)), k=12).captions for c in row}
    assert reachable == {shots[0], shots[1]}

    strict = CaptionBank.from_training_frames(patches, captions, train_frames=train, strict=True)
    assert set(strict.texts) == {shots[0]} and set(strict.frames.tolist()) == {0, 1, 2, 3}


def test_user_bank_from_json(tmp_path):
    features = np.random.default_rng(3).normal(size=(2, 6, 8)).astype(np.float16)
    np.save(tmp_path / "features.npy", features)
    spec = {"space_id": "toy", "patches": "features.npy", "captions": [["a red boat"], ["a snowy hill", "snow"]]}
    (tmp_path / "bank.json").write_text(json.dumps(spec))
    user = CaptionBank.from_json(tmp_path / "bank.json", space_id="toy")
    bank = CaptionBank.from_training_frames(_patches(), _captions(), np.arange(4)).concat(user)
    assert len(bank) == 6 and bank.frames.tolist()[-2:] == [-1, -1]
    assert RetrievalNarrator(bank).narrate(torch.from_numpy(features[1:].astype(np.float32))) == ["a snowy hill"]

    with pytest.raises(InputError, match="space"):
        CaptionBank.from_json(tmp_path / "bank.json", space_id="clip")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="bad.json"):
        CaptionBank.from_json(tmp_path / "bad.json")


def test_registry_builds_retrieval_with_a_bank():
    bank = CaptionBank.from_training_frames(_patches(), _captions(), np.arange(12))
    narrator = build_narrator(NarrateConfig(narrator="retrieval"), bank=bank)
    assert narrator.name == "retrieval" and len(narrator.narrate(torch.randn(2, 6, 8))) == 2


@pytest.mark.parametrize("structured", [True, False])
@pytest.mark.parametrize("exact_floats", [1 << 26, 0])  # exhaustive, and the bounded reduced-space search
def test_bank_index_ranks_exactly_like_the_exhaustive_similarity(structured, exact_floats):
    from neurrator.narrate.retrieval import BankIndex

    rng = np.random.default_rng(4)
    if structured:  # patch vectors near a low-dimensional subspace, as vision features are
        bank = rng.normal(size=(40, 9, 4)) @ rng.normal(size=(4, 24)) + 0.3 * rng.normal(size=(40, 9, 24))
    else:  # no structure at all: the reduced space is useless, the bounds must still keep it exact
        bank = rng.normal(size=(40, 9, 24))
    bank = bank.astype(np.float16)
    queries = torch.from_numpy(bank[rng.integers(0, 40, 7)].astype(np.float32)) + 0.5 * torch.randn(7, 9, 24)
    index = BankIndex(bank, pooled_weight=0.3, exact_floats=exact_floats, rank=6)
    assert index.exhaustive == bool(exact_floats)
    reference = similarity(queries, bank.astype(np.float32), pooled_weight=0.3).numpy()
    ids, scores = index.top(queries, 5)
    expected = np.argsort(-reference, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(reference, expected, axis=1), atol=1e-5)


def test_retrieval_narrator_agrees_with_the_exhaustive_ranking_with_either_index():
    import neurrator.narrate.retrieval as retrieval

    rng = np.random.default_rng(5)
    patches = (rng.normal(size=(30, 16, 3)) @ rng.normal(size=(3, 40)) + 0.2 * rng.normal(size=(30, 16, 40)))
    patches = patches.astype(np.float16)
    captions = {f: [f"shot {f // 3}"] for f in range(30)}  # repeated texts: distinct captions need depth
    bank = CaptionBank.from_training_frames(patches, captions, train_frames=np.arange(30))
    queries = torch.from_numpy(patches[::2].astype(np.float32)) + 0.3 * torch.randn(15, 16, 40)
    fast = RetrievalNarrator(bank)
    reference = similarity(queries, patches.astype(np.float32)).numpy()
    order = np.argsort(-reference, axis=1, kind="stable")
    retrieved = fast.retrieve(queries, k=3)
    for i, row in enumerate(order):
        texts = list(dict.fromkeys(bank.texts[e] for e in row))[:3]
        assert retrieved.captions[i] == texts
    assert fast.index.exhaustive
    reduced = RetrievalNarrator(bank)
    reduced._index = retrieval.BankIndex(bank.patches, exact_floats=0, rank=2)
    assert reduced.retrieve(queries, k=3).captions == retrieved.captions
