"""Shared pieces of the analyses: callable types, caches, confidence intervals, figures, words.

The analyses never talk to an encoder, narrator or scorer directly: they take small callables
(a ``predict`` of a unit mask, a ``narrate`` of patches, an ``encode`` of sentences), so each
one can be tested with fakes and runs unchanged on real models.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Callable, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; analyses only ever write PNG files
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from neurrator.core.threads import thread_limit

#: units mask (n_units,) bool → predicted patches (n_windows, n_patches, dim).
PredictFn = Callable[[np.ndarray], torch.Tensor]
#: patches (n, n_patches, dim) → n sentences.
NarrateFn = Callable[[torch.Tensor], list[str]]
#: n sentences → (n, d) float32 unit-norm embeddings.
EncodeFn = Callable[[list[str]], np.ndarray]


def single_threaded() -> contextlib.AbstractContextManager[None]:
    """:func:`thread_limit` of 1, for classifier fits and SAE training."""
    return thread_limit(1)


class CachedNarrator:
    """Narrate patches, narrating each distinct input tensor only once.

    Scaling draws, leave-one-out queries and repeated pools produce byte-identical patch
    tensors (e.g. every draw of ``N = all``); they are looked up instead of re-narrated.

    Parameters
    ----------
    narrate : the underlying ``NarrateFn``.
    name : narrator name, recorded in every result that used it.
    """

    def __init__(self, narrate: NarrateFn, name: str):
        self._narrate = narrate
        self.name = name
        self._cache: dict[bytes, str] = {}
        self.calls = 0
        self.hits = 0

    @staticmethod
    def _key(row: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(row).tobytes(), digest_size=16).digest()

    def __call__(self, patches: torch.Tensor) -> list[str]:
        """``patches``: (n, n_patches, dim) → n sentences."""
        rows = patches.detach().to(torch.float32).cpu().numpy()
        keys = [self._key(r) for r in rows]
        missing = list(dict.fromkeys(k for k in keys if k not in self._cache))
        first_index: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            first_index.setdefault(k, i)
        self.calls += len(keys)
        self.hits += len(keys) - len(missing)
        if missing:
            idx = [first_index[k] for k in missing]
            sentences = self._narrate(patches[idx])
            self._cache.update(zip(missing, sentences, strict=True))
        return [self._cache[k] for k in keys]


class CachedEncoder:
    """Embed sentences, each distinct sentence once (narrators repeat themselves a lot)."""

    def __init__(self, encode: EncodeFn):
        self._encode = encode
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        """(n,) sentences → (n, d) float32 unit-norm rows."""
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            self._cache.update(
                zip(missing, np.asarray(self._encode(missing), dtype=np.float32), strict=True)
            )
        if not sentences:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._cache[s] for s in sentences])


_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


def content_words(sentence: str) -> list[str]:
    """Lower-case words of a sentence without English stop words or one-letter tokens."""
    return [
        w for w in _WORD.findall(sentence.lower()) if len(w) > 1 and w not in ENGLISH_STOP_WORDS
    ]


def central_sentence(sentences: Sequence[str], encode: EncodeFn) -> str:
    """The sentence with the highest mean cosine to the others (the SBERT-central one)."""
    unique = list(dict.fromkeys(sentences))
    if len(unique) == 1:
        return unique[0]
    emb = encode(unique)
    return unique[int(np.argmax((emb @ emb.T).mean(axis=1)))]


def shared_words(sentences: Sequence[str], n: int = 3) -> list[str]:
    """The ``n`` content words found in the most sentences (ties broken by first appearance)."""
    counts: dict[str, int] = {}
    for s in sentences:
        for w in dict.fromkeys(content_words(s)):
            counts[w] = counts.get(w, 0) + 1
    return [w for w, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def figure_png(fig: plt.Figure, *, dpi: int = 110) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
    plt.close(fig)
    return buffer.getvalue()
