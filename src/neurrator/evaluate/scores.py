"""Sentence-level scores of narrations, their floors and controls, and honest statistics.

Every test window gets (all SBERT cosines, in [-1, 1]):

- ``matched``: mean cosine between the narration and the true frame's reference captions
  (the **headline** score; with one reference per frame, as in the paper's BLIP-2 setup, it
  is simply that cosine). ``matched_max`` is the best single reference.
- ``shuffled``: the same narration against the references of another test window's frame,
  drawn with a seeded generator from a different shot (a different frame when shots are
  unknown). Paper A.5's "shuffled pairing".
- ``word_salad``: a sentence of a fixed pool of 30 nonsense sentences against the true
  references. Paper A.4's "random-sentence floor".
- ``random_caption``: a reference caption of a random frame of another shot against the true
  references. Paper §4.2's "random caption against ground truth".

Windows of one frame across repeats are not independent, and neither are neighbouring frames
of one shot, so intervals and tests work on blocks (shots, else 1 s runs of frames) through
:mod:`neurrator.evaluate.stats`.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.evaluate.base import SentenceScorer
from neurrator.evaluate.stats import (
    BLOCK_BOOTSTRAP,
    block_bootstrap_ci,
    block_description,
    block_ids,
    holm,
    paired_test,
)

#: Per-window score columns, in display order, with what each one is.
SCORE_COLUMNS: dict[str, str] = {
    "matched": "narration vs true frame's references (mean over references; headline)",
    "matched_max": "narration vs true frame's best reference",
    "shuffled": "narration vs another shot's references (seeded shuffle)",
    "word_salad": "word-salad sentence vs true references (floor)",
    "random_caption": "another shot's caption vs true references (floor)",
}

#: Paired comparisons: the matched score against each control.
COMPARISONS = ("shuffled", "word_salad", "random_caption")


def load_word_salad(path: str | Path | None = None) -> list[str]:
    """The word-salad pool: the bundled 30 sentences, or a JSON list (or ``{"sentences": [...]}``)."""
    if path is None:
        text = resources.files("neurrator.evaluate").joinpath("data/word_salad.json").read_text()
        source: str | Path = "neurrator/evaluate/data/word_salad.json"
    else:
        source = Path(path)
        if not source.is_file():
            raise InputError(source, "word-salad pool not found")
        text = source.read_text()
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(source, f"word-salad pool is not valid JSON: {exc}") from None
    sentences = raw.get("sentences") if isinstance(raw, dict) else raw
    if not isinstance(sentences, list) or len(sentences) < 2 or not all(isinstance(s, str) and s.strip() for s in sentences):
        raise InputError(source, "word-salad pool must be a JSON list of at least 2 non-empty strings")
    return sentences


def _groups(frames: np.ndarray, shot_of_frame: np.ndarray | None) -> np.ndarray:
    """Unit of non-independence per frame: its shot when known, else the frame itself."""
    return np.asarray(shot_of_frame)[frames] if shot_of_frame is not None else frames


def _draw_other(rng: np.random.Generator, own: np.ndarray, pool_groups: np.ndarray) -> np.ndarray:
    """For each entry of ``own`` (group ids), the index of a random pool item of another group.

    Returns -1 where every pool item shares the group.
    """
    out = np.full(len(own), -1, dtype=np.int64)
    for g in np.unique(own):
        rows = np.flatnonzero(own == g)
        allowed = np.flatnonzero(pool_groups != g)
        if len(allowed):
            out[rows] = allowed[rng.integers(0, len(allowed), size=len(rows))]
    return out


class ReferenceBank:
    """Unit-norm embeddings of every frame's reference captions.

    Parameters
    ----------
    captions : frame index → reference captions (≥ 1 each).
    scorer : the sentence scorer.
    """

    def __init__(self, captions: dict[int, list[str]], scorer: SentenceScorer):
        self.frames = np.array(sorted(f for f, caps in captions.items() if caps), dtype=np.int64)
        if not len(self.frames):
            raise ValueError("no frame has a reference caption")
        self.captions = {int(f): list(captions[f]) for f in self.frames}
        flat = [c for f in self.frames for c in self.captions[int(f)]]
        vectors = scorer.encode(flat)
        self.embeddings: dict[int, np.ndarray] = {}
        start = 0
        for f in self.frames:
            n = len(self.captions[int(f)])
            self.embeddings[int(f)] = vectors[start : start + n]
            start += n
        #: (n_frames_with_captions, dim) mean reference vector, so mean cosine is one dot product.
        self.mean_vectors = np.stack([self.embeddings[int(f)].mean(0) for f in self.frames])
        self._row = {int(f): i for i, f in enumerate(self.frames)}

    def mean_cosine(self, vectors: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(n, dim) unit vectors × (n,) frames → (n,) mean cosine to each frame's references."""
        rows = np.array([self._row[int(f)] for f in frames], dtype=np.int64)
        return np.einsum("nd,nd->n", vectors, self.mean_vectors[rows])

    def max_cosine(self, vectors: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """(n, dim) unit vectors × (n,) frames → (n,) best cosine over each frame's references."""
        out = np.empty(len(frames), dtype=np.float32)
        for f in np.unique(frames):
            rows = np.flatnonzero(frames == f)
            out[rows] = (vectors[rows] @ self.embeddings[int(f)].T).max(axis=1)
        return out


def score_windows(
    narrations: list[str],
    frames: np.ndarray,
    captions: dict[int, list[str]] | ReferenceBank,
    scorer: SentenceScorer,
    *,
    word_salad: list[str],
    shot_of_frame: np.ndarray | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Score one narration per test window against its true frame and the controls.

    Parameters
    ----------
    narrations : (n,) one sentence per window.
    frames : (n,) int, the stimulus frame each window was recorded on.
    captions : frame → reference captions, or a prepared :class:`ReferenceBank`.
    scorer : sentence scorer (unit-norm embeddings).
    word_salad : the nonsense-sentence pool of the word-salad floor.
    shot_of_frame : (n_frames,) shot id per stimulus frame; controls then come from other shots.
    seed : seeds the shuffled pairing and both floors.

    Returns
    -------
    DataFrame, one row per window: ``frame``, ``narration``, the :data:`SCORE_COLUMNS`,
    ``shuffled_frame``, ``word_salad_sentence``, ``random_caption_frame``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if len(narrations) != len(frames):
        raise ValueError(f"{len(narrations)} narrations for {len(frames)} windows")
    bank = captions if isinstance(captions, ReferenceBank) else ReferenceBank(captions, scorer)
    missing = sorted(set(frames.tolist()) - set(bank.frames.tolist()))
    if missing:
        raise ValueError(f"{len(missing)} test frames have no reference caption, e.g. {missing[:5]}")
    rng = np.random.default_rng(seed)
    window_groups = _groups(frames, shot_of_frame)

    narration_vectors = scorer.encode(list(narrations))
    matched = bank.mean_cosine(narration_vectors, frames)
    matched_max = bank.max_cosine(narration_vectors, frames)

    # Shuffled pairing: the narration against a test window of another shot (or frame).
    partner = _draw_other(rng, window_groups, window_groups)
    if (partner < 0).any():
        partner = np.where(partner < 0, _draw_other(rng, frames, frames), partner)
    shuffled_frame = np.where(partner >= 0, frames[np.maximum(partner, 0)], -1)
    shuffled = np.full(len(frames), np.nan, dtype=np.float32)
    ok = shuffled_frame >= 0
    shuffled[ok] = bank.mean_cosine(narration_vectors[ok], shuffled_frame[ok])

    # Word-salad floor.
    salad_idx = rng.integers(0, len(word_salad), size=len(frames))
    salad_vectors = scorer.encode(list(word_salad))
    word_salad_score = bank.mean_cosine(salad_vectors[salad_idx], frames)

    # Random-caption floor: a caption of a frame from another shot, never the same frame's.
    pick = _draw_other(rng, window_groups, _groups(bank.frames, shot_of_frame))
    if (pick < 0).any():
        pick = np.where(pick < 0, _draw_other(rng, frames, bank.frames), pick)
    random_frame = np.where(pick >= 0, bank.frames[np.maximum(pick, 0)], -1)
    random_caption = np.full(len(frames), np.nan, dtype=np.float32)
    for f in np.unique(random_frame[random_frame >= 0]):
        rows = np.flatnonzero(random_frame == f)
        which = rng.integers(0, len(bank.captions[int(f)]), size=len(rows))
        vectors = bank.embeddings[int(f)][which]
        random_caption[rows] = bank.mean_cosine(vectors, frames[rows])

    return pd.DataFrame(
        {
            "frame": frames,
            "narration": list(narrations),
            "matched": matched.astype(np.float32),
            "matched_max": matched_max.astype(np.float32),
            "shuffled": shuffled,
            "word_salad": word_salad_score.astype(np.float32),
            "random_caption": random_caption,
            "shuffled_frame": shuffled_frame,
            "word_salad_sentence": salad_idx,
            "random_caption_frame": random_frame,
        }
    )


# ---- the two scoring definitions of the benchmark ----------------------------------------------


def load_released_pool() -> list[str]:
    """The released script's 30 word-salad sentences (``data/word_salad_released.json``, MIT)."""
    raw = json.loads(resources.files("neurrator.evaluate").joinpath("data/word_salad_released.json").read_text())
    return list(raw["sentences"])


def released_scores(
    narrations: list[str], frames: np.ndarray, captions: dict[int, list[str]], scorer: SentenceScorer,
    pool: list[str], *, seed: int = 0,
) -> dict[str, np.ndarray]:
    """Released-script compatible scores (``scripts/evaluate_sbert.py`` of the paper's code).

    With unit-norm embeddings ``e(·)``, ``ref_i`` = the **first** reference caption of window
    ``i``'s frame and ``π = default_rng(seed).permutation(n)`` (one global permutation):

    - ``matched[i]  = e(narration_i) · e(ref_i)``
    - ``shuffled[i] = e(narration_i) · e(ref_π(i))``
    - ``floor[i]    = mean_j e(narration_i) · e(pool_j)`` over the 30 pool sentences.

    Returns (n,) float64 arrays ``matched``, ``shuffled``, ``floor``.
    """
    frames = np.asarray(frames, dtype=np.int64)
    if len(narrations) != len(frames):
        raise ValueError(f"{len(narrations)} narrations for {len(frames)} windows")
    refs = [captions[int(f)][0] for f in frames]
    e_dec = np.asarray(scorer.encode(list(narrations)), dtype=np.float64)
    e_ref = np.asarray(scorer.encode(refs), dtype=np.float64)
    e_pool = np.asarray(scorer.encode(list(pool)), dtype=np.float64)
    perm = np.random.default_rng(seed).permutation(len(frames))
    return {
        "matched": np.einsum("nd,nd->n", e_dec, e_ref),
        "shuffled": np.einsum("nd,nd->n", e_dec, e_ref[perm]),
        "floor": (e_dec @ e_pool.T).mean(axis=1),
    }


def heldout_caption_split(captions: dict[int, list[str]]) -> tuple[dict[int, list[str]], dict[int, str]]:
    """The held-out-caption rule: for a frame with k ≥ 2 references, captions 1…k−1 may enter a
    narrator's caption bank and caption k is held out for scoring; a frame with one reference
    keeps it in the bank and is not scored by the headline.

    Returns ``(bank captions, held-out caption per frame)``.
    """
    bank, held = {}, {}
    for frame, caps in captions.items():
        caps = [c for c in caps if str(c).strip()]
        if len(caps) >= 2:
            bank[int(frame)], held[int(frame)] = list(caps[:-1]), caps[-1]
        elif caps:
            bank[int(frame)] = list(caps)
    return bank, held


def heldout_scores(
    narrations: list[str], frames: np.ndarray, heldout: dict[int, str], scorer: SentenceScorer, blocks: np.ndarray,
    *, seed: int = 0,
) -> dict[str, np.ndarray] | None:
    """Held-out-caption scores (the headline): ``matched[i] = e(narration_i) · e(held_i)`` and the
    other-shot pairing ``shuffled[i] = e(narration_i) · e(held_j)`` for a test window ``j`` of
    another block (seeded draw; of another frame when every test window shares one block).
    Windows whose frame has no held-out caption get ``nan``.
    ``None`` if no window has one.
    """
    frames = np.asarray(frames, dtype=np.int64)
    has = np.array([int(f) in heldout for f in frames])
    if not has.any():
        return None
    e_dec = np.asarray(scorer.encode(list(narrations)), dtype=np.float64)
    rows = np.flatnonzero(has)
    e_held = np.zeros_like(e_dec)
    e_held[rows] = scorer.encode([heldout[int(f)] for f in frames[rows]])
    matched = np.full(len(frames), np.nan)
    matched[rows] = np.einsum("nd,nd->n", e_dec[rows], e_held[rows])
    rng = np.random.default_rng(seed)
    blocks = np.asarray(blocks)
    partner = _draw_other(rng, blocks[rows], blocks[rows])
    if (partner < 0).any():  # every test window in one block: fall back to another frame
        partner = np.where(partner < 0, _draw_other(rng, frames[rows], frames[rows]), partner)
    shuffled = np.full(len(frames), np.nan)
    ok = partner >= 0
    shuffled[rows[ok]] = np.einsum("nd,nd->n", e_dec[rows[ok]], e_held[rows[partner[ok]]])
    return {"matched": matched, "shuffled": shuffled}


def _normal(text: str) -> str:
    return " ".join(str(text).casefold().split()).rstrip(".")


def copy_flags(narrations: list[str], frames: np.ndarray, captions: dict[int, list[str]]) -> np.ndarray:
    """(n,) bool: the narration is identical (case, spacing, final full stop ignored) to one of
    the scored frame's reference captions."""
    return np.array([_normal(s) in {_normal(c) for c in captions.get(int(f), ())} for s, f in zip(narrations, frames,
                                                                                                strict=True)])


# ---- statistics -------------------------------------------------------------------------


def summarize_scores(
    per_window: pd.DataFrame,
    *,
    shot_of_frame: np.ndarray | None = None,
    frame_rate: float | None = None,
    n_bootstrap: int = 2000,
    ci_level: float = 0.95,
    seed: int = 0,
) -> dict:
    """Means ± std, block-bootstrap CIs and block-level paired tests of a :func:`score_windows` table.

    Blocks (:func:`~neurrator.evaluate.stats.block_ids`) are shots when known, else contiguous
    1 s runs of frames (images for an image set): windows within a block are not independent.
    The paired tests (matched vs each control) are Wilcoxon signed-rank tests on block means,
    Holm-corrected across the controls.
    """
    frames = per_window["frame"].to_numpy()
    blocks = block_ids(frames, shot_of_frame=shot_of_frame, frame_rate=frame_rate)
    out: dict = {
        "n_windows": len(per_window),
        "n_frames": len(np.unique(frames)),
        "n_blocks": len(np.unique(blocks)),
        "blocks": block_description(shots_known=shot_of_frame is not None, frame_rate=frame_rate),
        "headline": "matched",
        "headline_definition": SCORE_COLUMNS["matched"],
        "ci": f"{ci_level:.0%} {BLOCK_BOOTSTRAP} ({n_bootstrap} resamples)",
        "scores": {},
        "tests": {},
    }
    if "narration" in per_window:
        sentences = per_window["narration"].astype(str)
        out["unique_sentence_fraction"] = float(sentences.nunique() / max(len(sentences), 1))
    for col in SCORE_COLUMNS:
        if col not in per_window:
            continue
        v = per_window[col].to_numpy(dtype=np.float64)
        ci = block_bootstrap_ci(v, blocks, n_resamples=n_bootstrap, level=ci_level, seed=seed)
        out["scores"][col] = {"mean": float(np.nanmean(v)), "std": float(np.nanstd(v)), "ci_low": ci.low,
                              "ci_high": ci.high, "n_blocks": ci.n_blocks}
    tests = {}
    for control in COMPARISONS:
        if control in per_window:
            tests[f"matched_vs_{control}"] = paired_test(per_window["matched"].to_numpy(dtype=np.float64),
                                                         per_window[control].to_numpy(dtype=np.float64), blocks)
    adjusted = holm([t.p_value for t in tests.values()])
    for (name, t), p in zip(tests.items(), adjusted, strict=True):
        out["tests"][name] = {**t.to_dict(), "p_holm": float(p)}
    return out
