"""Offline narrator: the caption of the nearest training frame in the vision space.

What the bank may hold (the leakage rule)
-----------------------------------------
:meth:`CaptionBank.from_training_frames` admits only frames that have training samples
(``Split.train_frames``). A frame without training samples (a held-out frame) never
becomes a bank entry, so its patches are never compared against and its captions are never
returned *through it*. Caption *texts* are shared when the stimulus captions whole shots: a
held-out frame whose shot also has training frames carries the same text as those training
frames, and that text is legitimately reachable (it describes frames the encoder was trained
on). ``strict=True`` removes that too: every caption text carried by any non-training frame is
dropped from the bank, so no held-out frame's caption text can ever be returned.

Entries of a user bank (:meth:`CaptionBank.from_json`) come with their own patch features and
are marked with frame ``-1``.

Similarity
----------
With queries ``q`` and bank entries ``b`` of shape (n_patches, dim)::

    pooled    = cos(mean_p q_p, mean_p b_p)            # global content, position-free
    per_patch = mean_p cos(q_p, b_p)                    # spatial layout, patch by patch
    score     = pooled_weight * pooled + (1 - pooled_weight) * per_patch

The per-patch term is one matrix product of flattened, per-patch-normalised tensors.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from neurrator.core.errors import InputError
from neurrator.narrate.base import NARRATORS
from neurrator.narrate.config import NarrateConfig

#: Upper bound on floats held per similarity chunk (keeps CLIP-sized banks within RAM).
_CHUNK_FLOATS = 1 << 25


@dataclass(frozen=True)
class CaptionBank:
    """Patch features with captions, searched by the retrieval narrators.

    Attributes
    ----------
    patches : (n_entries, n_patches, dim) float array (float16 memmaps are fine).
    captions : per entry, a non-empty tuple of captions; the first is the one returned.
    frames : (n_entries,) int64 stimulus frame of each entry, ``-1`` for user-bank entries.
    """

    patches: np.ndarray
    captions: tuple[tuple[str, ...], ...]
    frames: np.ndarray

    def __post_init__(self) -> None:
        if self.patches.ndim != 3:
            raise ValueError(f"bank patches must be (n_entries, n_patches, dim), got {self.patches.shape}")
        if not (len(self.captions) == len(self.frames) == self.patches.shape[0]):
            raise ValueError("bank patches, captions and frames disagree on the number of entries")
        if any(len(c) == 0 for c in self.captions):
            raise ValueError("every bank entry needs at least one caption")

    def __len__(self) -> int:
        return len(self.captions)

    @property
    def texts(self) -> list[str]:
        """The caption returned for each entry (its first caption)."""
        return [c[0] for c in self.captions]

    # ---- construction --------------------------------------------------------------------
    @classmethod
    def from_training_frames(
        cls,
        patches: np.ndarray,
        captions: Mapping[int, Sequence[str]],
        train_frames: np.ndarray,
        *,
        strict: bool = False,
    ) -> CaptionBank:
        """Bank of the training frames that have captions.

        Parameters
        ----------
        patches : (n_frames, n_patches, dim) patch targets of every stimulus frame.
        captions : frame index → captions (e.g. ``Stimulus.captions`` or a captioner's output).
        train_frames : frames that have training samples (``Split.train_frames``).
        strict : also drop caption texts carried by any frame not in ``train_frames``.
        """
        train = np.unique(np.asarray(train_frames, dtype=np.int64))
        forbidden: set[str] = set()
        if strict:
            train_set = set(train.tolist())
            forbidden = {text for frame, texts in captions.items() if int(frame) not in train_set for text in texts}
        frames, kept = [], []
        for frame in train:
            texts = tuple(t for t in captions.get(int(frame), ()) if t not in forbidden)
            if texts:
                frames.append(int(frame))
                kept.append(texts)
        if not frames:
            raise ValueError("no training frame has a caption: the caption bank would be empty")
        frames_arr = np.asarray(frames, dtype=np.int64)
        return cls(patches=np.asarray(patches[frames_arr]), captions=tuple(kept), frames=frames_arr)

    @classmethod
    def from_json(cls, path: str | Path, *, space_id: str | None = None) -> CaptionBank:
        """A user caption bank.

        The JSON file is ``{"space_id": str, "patches": "features.npy", "captions": [[str, ...], ...]}``:
        ``patches`` is a ``.npy`` file (relative to the JSON file) of shape
        (n_entries, n_patches, dim) computed in the same vision space as the run's targets, and
        ``captions`` holds one non-empty list per entry. If ``space_id`` is given, the file's
        ``space_id`` must match it.
        """
        path = Path(path)
        try:
            spec = json.loads(path.read_text())
        except FileNotFoundError:
            raise InputError(path, "caption bank file not found") from None
        except json.JSONDecodeError as exc:
            raise InputError(path, f"caption bank is not valid JSON: {exc}") from None
        if not isinstance(spec, dict) or not {"patches", "captions"} <= spec.keys():
            raise InputError(path, 'caption bank must be an object with "patches" and "captions"')
        if space_id is not None and spec.get("space_id") != space_id:
            raise InputError(path, f"caption bank is for space {spec.get('space_id')!r}, the run uses {space_id!r}")
        captions = spec["captions"]
        if not isinstance(captions, list) or not all(
            isinstance(c, list) and c and all(isinstance(t, str) and t.strip() for t in c) for c in captions
        ):
            raise InputError(path, '"captions" must be a list of non-empty lists of non-empty strings')
        npy = path.parent / spec["patches"]
        try:
            patches = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(npy, f"cannot read caption bank features: {exc}") from None
        if patches.ndim != 3 or patches.shape[0] != len(captions):
            raise InputError(npy, f"features must be (n_entries={len(captions)}, n_patches, dim), got {patches.shape}")
        return cls(patches=patches, captions=tuple(tuple(c) for c in captions), frames=np.full(len(captions), -1, np.int64))

    def concat(self, other: CaptionBank) -> CaptionBank:
        """Both banks' entries; they must share (n_patches, dim)."""
        if self.patches.shape[1:] != other.patches.shape[1:]:
            raise ValueError(f"banks differ in patch shape: {self.patches.shape[1:]} vs {other.patches.shape[1:]}")
        return CaptionBank(
            patches=np.concatenate([np.asarray(self.patches), np.asarray(other.patches)]),
            captions=self.captions + other.captions,
            frames=np.concatenate([self.frames, other.frames]),
        )


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
