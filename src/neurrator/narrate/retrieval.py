"""Offline narrator: the caption of the nearest training frame in the vision space.

The bank it searches, and the rule for what that bank may hold, live in
:mod:`neurrator.narrate.bank`.

Similarity
----------
With queries ``q`` and bank entries ``b`` of shape (n_patches, dim)::

    pooled    = cos(mean_p q_p, mean_p b_p)            # global content, position-free
    per_patch = mean_p cos(q_p, b_p)                    # spatial layout, patch by patch
    score     = pooled_weight * pooled + (1 - pooled_weight) * per_patch

:func:`similarity` computes it exhaustively (the reference). :class:`BankIndex` computes the
same scores fast and exactly:

- the bank is normalised once (pooled unit vectors, per-patch unit vectors);
- small spaces (``n_bank · n_patches · dim`` up to ``exact_floats``) score every entry with one
  matrix product per batch of queries;
- large spaces (e.g. 576 × 1024) search first in a reduced space: each unit patch vector is
  projected onto the top ``rank`` principal directions of the bank's patch vectors. With ``Π``
  that projection, ``Σ_p ⟨q̂_p, b̂_p⟩ = Σ_p ⟨Πq̂_p, Πb̂_p⟩ + Σ_p ⟨(I−Π)q̂_p, (I−Π)b̂_p⟩`` and
  the second sum is bounded by ``‖(I−Π)q̂‖ · ‖(I−Π)b̂‖`` (Cauchy–Schwarz over the flattened
  residuals). So every entry gets a lower and an upper bound; only entries whose upper bound
  reaches the ``depth``-th best lower bound can be among the top ``depth``, and only those are
  re-scored exactly. The ranking is exact (same entries, same scores to float round-off), not an
  approximation; a poor reduced space only makes the shortlist longer.
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
    """Pooled + per-patch cosine between every query and every bank entry (exhaustive).

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


class BankIndex:
    """The bank's features normalised once, for fast exact scoring and top-k search.

    Parameters
    ----------
    patches : (n_bank, n_patches, dim) bank features (float16 memmaps are fine).
    pooled_weight : as in :func:`similarity`.
    exact_floats : banks up to this many floats are held normalised in full (float32) and
        scored exhaustively; larger ones use the bounded reduced-space search.
    rank : principal directions of the reduced space.
    """

    def __init__(self, patches: np.ndarray, *, pooled_weight: float = 0.5, exact_floats: int = 1 << 26,
                 rank: int = 64, chunk: int = 64):
        self.patches = patches
        self.pooled_weight = pooled_weight
        self.n, self.n_patches, self.dim = patches.shape
        self.chunk = chunk
        self.pooled = torch.cat([_unit_pooled(self._rows(lo, lo + chunk)) for lo in range(0, self.n, chunk)])
        self.exhaustive = self.n * self.n_patches * self.dim <= exact_floats or rank >= self.dim
        if self.exhaustive:
            self.flat = torch.cat([_unit_patches(self._rows(lo, lo + chunk)) for lo in range(0, self.n, chunk)])
            return
        # Reduced space: top principal directions of (a sample of) the bank's unit patch vectors.
        rng = np.random.default_rng(0)
        take = np.sort(rng.choice(self.n * self.n_patches, size=min(self.n * self.n_patches, 16384), replace=False))
        rows = np.asarray(patches[np.unique(take // self.n_patches)], dtype=np.float32).reshape(-1, self.dim)
        sample = torch.nn.functional.normalize(torch.from_numpy(rows), dim=-1)
        _, _, vh = torch.linalg.svd(sample, full_matrices=False)
        self.basis = vh[:rank].T.contiguous()  # (dim, rank)
        coarse, residual = [], []
        for lo in range(0, self.n, chunk):
            c, r = self._reduce(self._rows(lo, lo + chunk))
            coarse.append(c)
            residual.append(r)
        self.coarse, self.residual = torch.cat(coarse), torch.cat(residual)

    def _rows(self, lo: int, hi: int) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.patches[lo:hi], dtype=np.float32))

    def _reduce(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(m, n_patches, dim) → flattened projected unit patches (m, n_patches · rank) / sqrt(P)
        and the norm of the flattened residual / sqrt(P) (m,)."""
        unit = torch.nn.functional.normalize(x.float(), dim=-1)
        projected = unit @ self.basis  # (m, P, rank)
        residual_sq = (1.0 - projected.square().sum(-1)).clamp_min(0).sum(-1)  # Σ_p ‖(I−Π)q̂_p‖²
        scale = self.n_patches ** 0.5
        return projected.reshape(len(x), -1) / scale, residual_sq.sqrt() / scale

    def scores(self, queries: torch.Tensor, entries: torch.Tensor | None = None) -> torch.Tensor:
        """Exact scores (m, n_bank), or (m, len(entries)) for the bank rows ``entries``."""
        q_pool = _unit_pooled(queries)
        pooled = q_pool @ (self.pooled if entries is None else self.pooled[entries]).T
        if self.exhaustive:
            bank = self.flat if entries is None else self.flat[entries]
            per_patch = _unit_patches(queries) @ bank.T
        else:
            rows = np.arange(self.n) if entries is None else entries.numpy()  # ascending
            q_patch = _unit_patches(queries)
            per_patch = torch.empty(len(queries), len(rows))
            for lo in range(0, len(rows), self.chunk):
                block = torch.from_numpy(np.asarray(self.patches[rows[lo : lo + self.chunk]], dtype=np.float32))
                per_patch[:, lo : lo + self.chunk] = q_patch @ _unit_patches(block).T
        return self.pooled_weight * pooled + (1.0 - self.pooled_weight) * per_patch

    def top(self, queries: torch.Tensor, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``depth`` best entries per query, best first (ties by entry index), with their
        exact scores: ((m, depth) int64, (m, depth) float32)."""
        queries = torch.as_tensor(queries).float()
        depth = min(depth, self.n)
        if self.exhaustive:
            return _best(self.scores(queries), depth)
        c, r = self._reduce(queries)
        w = 1.0 - self.pooled_weight
        centre = self.pooled_weight * (_unit_pooled(queries) @ self.pooled.T) + w * (c @ self.coarse.T)
        slack = w * r[:, None] * self.residual[None, :]
        lower, upper = centre - slack, centre + slack
        threshold = lower.topk(depth, dim=1).values[:, -1:]
        candidates = upper >= threshold - 1e-6  # can still be among the top depth
        union = torch.nonzero(candidates.any(dim=0)).flatten()
        exact = torch.full((len(queries), self.n), -torch.inf)
        exact[:, union] = self.scores(queries, union)
        exact[~candidates] = -torch.inf
        return _best(exact, depth)


def _best(scores: torch.Tensor, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Top ``depth`` columns per row of ``scores``, best first, ties broken by column index."""
    values = scores.numpy()
    entries = np.argsort(-values, axis=1, kind="stable")[:, :depth]
    return entries.astype(np.int64), np.take_along_axis(values, entries, axis=1).astype(np.float32)


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
        self._index: BankIndex | None = None

    @property
    def index(self) -> BankIndex:
        """The bank normalised once for fast exact search (built on first use)."""
        if self._index is None:
            self._index = BankIndex(self.bank.patches, pooled_weight=self.pooled_weight)
        return self._index

    def retrieve(self, patches: torch.Tensor, k: int = 1, *, batch_size: int = 256) -> Retrieved:
        """Top-``k`` distinct captions for each of ``patches`` (n, n_patches, dim).

        Entries are ranked by exact score, ties by bank index; each caption is credited to its
        best-scoring entry."""
        patches = torch.as_tensor(patches)
        if tuple(patches.shape[1:]) != tuple(self.bank.patches.shape[1:]):
            raise ValueError(f"query patches {tuple(patches.shape[1:])} do not match bank patches "
                             f"{tuple(self.bank.patches.shape[1:])}")
        n, n_bank = len(patches), len(self.bank)
        entries = np.full((n, k), -1, dtype=np.int64)
        best = np.full((n, k), np.nan, dtype=np.float32)
        captions: list[list[str]] = [[] for _ in range(n)]
        for lo in range(0, n, batch_size):
            pending, depth = np.arange(lo, min(lo + batch_size, n)), min(n_bank, 4 * k + 4)
            while len(pending):
                ids, scores = self.index.top(patches[pending], depth)
                unfinished = []
                for row, i in enumerate(pending):
                    seen: list[str] = []
                    for entry, score in zip(ids[row], scores[row], strict=True):
                        text = self._texts[entry]
                        if text not in seen:
                            entries[i, len(seen)], best[i, len(seen)] = entry, score
                            seen.append(text)
                            if len(seen) == k:
                                break
                    if len(seen) < k and depth < n_bank:  # ties or repeated captions: look deeper
                        entries[i], best[i] = -1, np.nan
                        unfinished.append(i)
                    else:
                        captions[i] = seen
                pending, depth = np.asarray(unfinished, dtype=np.int64), min(n_bank, 4 * depth)
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
