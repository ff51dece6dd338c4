"""Sentence-scorer interface (SBERT by default)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from neurrator.core.registry import Registry


@runtime_checkable
class SentenceScorer(Protocol):
    """Sentences → unit-norm embeddings, so cosine is a dot product.

    Attributes
    ----------
    name : model id or path.
    """

    name: str

    def encode(self, sentences: list[str]) -> np.ndarray:
        """(n,) sentences → (n, dim) float32, L2-normalised rows."""
        ...


SENTENCE_SCORERS: Registry[SentenceScorer] = Registry("sentence scorer")
