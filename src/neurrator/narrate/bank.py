"""The caption bank: captioned patch features the retrieval narrators (and analyses) search.

What a bank may hold (the leakage rule)
---------------------------------------
:func:`build_caption_bank` is the one way a run's bank is made. It admits only frames that
have training samples (``Split.train_frames``). A frame without training samples (a held-out
frame) never becomes a bank entry, so its patches are never compared against and its captions
are never returned *through it*. Caption *texts* are shared when the stimulus captions whole
shots: a held-out frame whose shot also has training frames carries the same text as those
training frames, and that text is legitimately reachable (it describes frames the encoder was
trained on). ``strict_bank=True`` removes that too: every caption text carried by any
non-training frame is dropped, so no held-out frame's caption text can ever be returned.

Entries of a user bank (``narrate.caption_bank_json``, :meth:`CaptionBank.from_json`) come
with their own patch features and are marked with frame ``-1``. Each bank says in ``rule``
what it holds; :func:`provenance` records that beside the narrations it produced.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from neurrator.core.errors import InputError

if TYPE_CHECKING:
    from neurrator.narrate.config import NarrateConfig
    from neurrator.vision.base import PatchTargets

#: Narrators that search a caption bank; the others (LLaVA) read the patches alone.
CAPTION_BANK_NARRATORS = ("retrieval", "retrieval+lm")


@dataclass(frozen=True)
class CaptionBank:
    """Patch features with captions.

    Attributes
    ----------
    patches : (n_entries, n_patches, dim) float array (float16 memmaps are fine).
    captions : per entry, a non-empty tuple of captions; the first is the one returned.
    frames : (n_entries,) int64 stimulus frame (or corpus image) of each entry, ``-1`` for
        user-bank entries.
    rule : what the bank may hold, in words (recorded with the narrations it produced).
    """

    patches: np.ndarray
    captions: tuple[tuple[str, ...], ...]
    frames: np.ndarray
    rule: str = ""

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

    def all_texts(self) -> set[str]:
        """Every caption text the bank holds (a narration equal to one of them is a copy)."""
        return {t for c in self.captions for t in c}

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
        rule = "training frames only" + (", no caption text of a held-out frame (strict)" if strict else "")
        return cls(patches=np.asarray(patches[frames_arr]), captions=tuple(kept), frames=frames_arr, rule=rule)

    @classmethod
    def from_captioned(cls, patches: np.ndarray, captions: Sequence[Sequence[str]], *, rule: str) -> CaptionBank:
        """Bank of the items of ``patches`` (n, n_patches, dim) that have captions (e.g. an image
        corpus); ``frames`` holds each entry's index. ``patches`` is not copied if all are captioned."""
        index = np.asarray([i for i, c in enumerate(captions) if len(c)], dtype=np.int64)
        if len(index) == 0:
            raise ValueError("no item has a caption: the caption bank would be empty")
        kept = patches if len(index) == len(captions) else np.asarray(patches[index])
        return cls(patches=kept, captions=tuple(tuple(captions[i]) for i in index), frames=index, rule=rule)

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
        return cls(patches=patches, captions=tuple(tuple(c) for c in captions),
                   frames=np.full(len(captions), -1, np.int64), rule=f"user bank {path}")

    def concat(self, other: CaptionBank) -> CaptionBank:
        """Both banks' entries; they must share (n_patches, dim)."""
        if self.patches.shape[1:] != other.patches.shape[1:]:
            raise ValueError(f"banks differ in patch shape: {self.patches.shape[1:]} vs {other.patches.shape[1:]}")
        return CaptionBank(
            patches=np.concatenate([np.asarray(self.patches), np.asarray(other.patches)]),
            captions=self.captions + other.captions,
            frames=np.concatenate([self.frames, other.frames]),
            rule=" + ".join(r for r in (self.rule, other.rule) if r),
        )


def build_caption_bank(
    config: NarrateConfig, targets: PatchTargets, captions: Mapping[int, Sequence[str]], train_frames: np.ndarray
) -> CaptionBank:
    """The run's bank: captioned training frames of ``targets`` (``config.strict_bank``), plus
    the user's bank ``config.caption_bank_json`` if set (in the same vision space)."""
    bank = CaptionBank.from_training_frames(targets.patches, captions, train_frames, strict=config.strict_bank)
    if config.caption_bank_json is not None:
        bank = bank.concat(CaptionBank.from_json(config.caption_bank_json, space_id=targets.info.space_id))
    return bank


def provenance(bank: CaptionBank | None) -> dict | None:
    """What a bank held, for the record beside the narrations (``None`` without a bank)."""
    if bank is None:
        return None
    return {"rule": bank.rule, "n_entries": len(bank), "n_frames": len(np.unique(bank.frames[bank.frames >= 0])),
            "n_user_entries": int((bank.frames < 0).sum())}
