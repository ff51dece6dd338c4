"""Offline narrator: the caption of the nearest training frame in the vision space.

The bank it searches, and the rule for what that bank may hold, live in
:mod:`neurrator.narrate.bank`.

Similarity
----------
With queries ``q`` and bank entries ``b`` of shape (n_patches, dim)::

    pooled    = cos(mean_p q_p, mean_p b_p)            # global content, position-free
    per_patch = mean_p cos(q_p, b_p)                    # spatial layout, patch by patch
    score     = pooled_weight * pooled + (1 - pooled_weight) * per_patch

The per-patch term is one matrix product of flattened, per-patch-normalised tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurrator.narrate.bank import CaptionBank
from neurrator.narrate.base import NARRATORS
from neurrator.narrate.config import NarrateConfig

#: Upper bound on floats held per similarity chunk (keeps CLIP-sized banks within RAM).
_CHUNK_FLOATS = 1 << 25


def _unit_patches(x: torch.Tensor) -> torch.Tensor:
    """(n, n_patches, dim) → flattened (n, n_patches * dim), each patch scaled to unit norm / sqrt(n_patches)."""
    unit = torch.nn.functional.normalize(x.float(), dim=-1) / x.shape[1] ** 0.5
    return unit.reshape(x.shape[0], -1)


def _unit_pooled(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x.float().mean(dim=1), dim=-1)


def similarity(queries: torch.Tensor, bank: np.ndarray, *, pooled_weight: float = 0.5) -> torch.Tensor:
    """Pooled + per-patch cosine between every query and every bank entry.

    Parameters
    ----------
    queries : (n, n_patches, dim) float tensor.
    bank : (n_bank, n_patches, dim) float array (read in chunks; may be a float16 memmap).

    Returns
    -------
    (n, n_bank) float32 tensor of scores in [-1, 1].
    """
    if tuple(queries.shape[1:]) != tuple(bank.shape[1:]):
        raise ValueError(f"query patches {tuple(queries.shape[1:])} do not match bank patches {tuple(bank.shape[1:])}")
    per_row = int(np.prod(bank.shape[1:]))
    chunk = max(1, _CHUNK_FLOATS // per_row)
    scores = torch.empty(queries.shape[0], bank.shape[0], dtype=torch.float32)
    for q0 in range(0, queries.shape[0], chunk):
        q = queries[q0 : q0 + chunk]
        q_patch, q_pool = _unit_patches(q), _unit_pooled(q)
        for b0 in range(0, bank.shape[0], chunk):
            b = torch.from_numpy(np.asarray(bank[b0 : b0 + chunk], dtype=np.float32))
            scores[q0 : q0 + chunk, b0 : b0 + chunk] = (
                pooled_weight * (q_pool @ _unit_pooled(b).T) + (1.0 - pooled_weight) * (q_patch @ _unit_patches(b).T)
            )
    return scores


@dataclass(frozen=True)
class Retrieved:
    """The top-k *distinct* captions per query, best first.

    Attributes
    ----------
    entries : (n, k) int64 bank entry that contributed each caption (its best-scoring entry);
        ``-1`` where fewer than k distinct captions exist.
    scores : (n, k) float32 similarity of that entry; ``nan`` where ``entries`` is ``-1``.
    captions : per query, the k (or fewer) caption texts.
    """

    entries: np.ndarray
    scores: np.ndarray
    captions: list[list[str]]


class RetrievalNarrator:
    """Narrate predicted patches with the caption of the most similar bank entry.

    Parameters
    ----------
    bank : the caption bank (training frames only; see the module docstring).
    pooled_weight : weight of the pooled cosine; ``1 - pooled_weight`` goes to per-patch cosine.

    Examples
    --------
    >>> narrator = RetrievalNarrator(bank)                    # doctest: +SKIP
    >>> narrator.narrate(predicted)                           # doctest: +SKIP
    ['a car parked in a garage', ...]
    """

    name = "retrieval"
    is_stand_in = True
    description = "offline stand-in for LLaVA-1.5: caption of the nearest training frame (pooled + per-patch cosine)"

    def __init__(self, bank: CaptionBank, *, pooled_weight: float = 0.5):
        self.bank = bank
        self.pooled_weight = pooled_weight
        self._texts = bank.texts

    def retrieve(self, patches: torch.Tensor, k: int = 1) -> Retrieved:
        """Top-``k`` distinct captions for each of ``patches`` (n, n_patches, dim)."""
        scores = similarity(torch.as_tensor(patches), self.bank.patches, pooled_weight=self.pooled_weight)
        # A stable sort orders tied entries by bank index, so ties resolve deterministically.
        order = np.argsort(-scores.numpy(), axis=1, kind="stable")
        entries = np.full((scores.shape[0], k), -1, dtype=np.int64)
        best = np.full((scores.shape[0], k), np.nan, dtype=np.float32)
        captions: list[list[str]] = []
        for i, row in enumerate(order):
            seen: list[str] = []
            for entry in row:
                text = self._texts[entry]
                if text in seen:
                    continue
                entries[i, len(seen)] = entry
                best[i, len(seen)] = scores[i, entry]
                seen.append(text)
                if len(seen) == k:
                    break
            captions.append(seen)
        return Retrieved(entries=entries, scores=best, captions=captions)

    def narrate_retrieved(self, patches: torch.Tensor, *, progress: bool = False) -> tuple[list[str], Retrieved]:
        """Narrations and the retrieval behind them (one similarity pass for both)."""
        retrieved = self.retrieve(patches, k=1)
        return [c[0] for c in retrieved.captions], retrieved

    def narrate(self, patches: torch.Tensor, *, progress: bool = False) -> list[str]:
        """``patches``: (n, n_patches, dim) → n captions (the best entry's first caption)."""
        return self.narrate_retrieved(patches, progress=progress)[0]


@NARRATORS.register("retrieval")
def _make_retrieval(config: NarrateConfig, bank: CaptionBank | None) -> RetrievalNarrator:
    if bank is None:
        raise ValueError("the retrieval narrator needs a caption bank")
    return RetrievalNarrator(bank, pooled_weight=config.pooled_weight)
