"""Narrations of predicted windows, saved with who narrated them and from which bank.

A :class:`Narrations` holds one sentence per narrated window and links it to its row of the
:class:`~neurrator.encoder.predictions.Predictions` it narrates. ``save(folder)`` writes two
files, ``load(folder)`` reads them back and checks them; a bad file is an
:class:`~neurrator.core.errors.InputError` naming it.

Files
-----
``narrations.parquet``  one row per narrated window: ``window``, ``repeat``, ``frame``,
    ``narration``, ``narrator``, ``is_stand_in``, ``retrieved_frame``, ``copied``, ``references``
``narrations.json``     :class:`NarratorInfo`, captioner, bank provenance, counts
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.narrate.bank import CaptionBank, provenance

TABLE_FILE = "narrations.parquet"
META_FILE = "narrations.json"
COLUMNS = ("window", "repeat", "frame", "narration", "narrator", "is_stand_in", "retrieved_frame", "copied",
           "references")


@dataclass(frozen=True)
class NarratorInfo:
    """Which narrator (or captioner) produced sentences, and whether it is an offline stand-in."""

    name: str
    description: str
    is_stand_in: bool

    @classmethod
    def of(cls, backend: Any) -> NarratorInfo:
        """The info of a narrator or captioner backend (its ``name``, ``description``, ``is_stand_in``)."""
        return cls(backend.name, str(getattr(backend, "description", backend.name)), bool(backend.is_stand_in))


@dataclass(frozen=True)
class Narrations:
    """Sentences of ``n`` narrated windows.

    Attributes
    ----------
    windows : (n,) int64 row of the predictions each sentence narrates.
    pairs : (n, 2) int64 ``(repeat, frame)`` of each window.
    sentences : (n,) the narrations.
    references : (n,) reference captions of each window's true frame (the captioner's).
    retrieved_frame : (n,) int64 training frame whose caption led a retrieval narrator, else ``-1``.
    copied : (n,) bool, the sentence is verbatim a caption of the narrator's bank.
    narrator, captioner : who narrated and who wrote the references.
    bank : what the caption bank held (:func:`neurrator.narrate.bank.provenance`), or ``None``.
    """

    windows: np.ndarray
    pairs: np.ndarray
    sentences: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]
    retrieved_frame: np.ndarray
    copied: np.ndarray
    narrator: NarratorInfo
    captioner: NarratorInfo
    bank: dict | None = None

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    def __len__(self) -> int:
        return len(self.sentences)

    @property
    def frames(self) -> np.ndarray:
        return self.pairs[:, 1]

    def reference_captions(self) -> dict[int, list[str]]:
        """Frame → the captioner's reference captions, for every narrated frame that has some."""
        return {int(f): list(r) for f, r in zip(self.frames, self.references, strict=True) if r}

    def to_frame(self) -> pd.DataFrame:
        """The table written to ``narrations.parquet`` (columns :data:`COLUMNS`)."""
        return pd.DataFrame({
            "window": self.windows, "repeat": self.pairs[:, 0], "frame": self.pairs[:, 1],
            "narration": list(self.sentences), "narrator": self.narrator.name,
            "is_stand_in": bool(self.narrator.is_stand_in), "retrieved_frame": self.retrieved_frame,
            "copied": self.copied, "references": [list(r) for r in self.references],
        }, columns=list(COLUMNS))

    def save(self, folder: str | Path) -> list[Path]:
        """Write both files into ``folder`` (each atomically); returns their paths."""
        folder = Path(folder)
        with atomic_path(folder / TABLE_FILE) as tmp:
            self.to_frame().to_parquet(tmp, index=False)
        meta = {"narrator": asdict(self.narrator), "captioner": asdict(self.captioner), "bank": self.bank,
                "n_narrated": len(self), "n_unique": len(set(self.sentences)), "n_copied": int(self.copied.sum())}
        return [folder / TABLE_FILE, atomic_write_json(folder / META_FILE, meta)]

    @classmethod
    def load(cls, folder: str | Path) -> Narrations:
        """Read what :meth:`save` wrote; :class:`InputError` naming the file that is missing or wrong."""
        folder = Path(folder)
        table_path, meta_path = folder / TABLE_FILE, folder / META_FILE
        try:
            meta = json.loads(meta_path.read_text())
            narrator, captioner = NarratorInfo(**meta["narrator"]), NarratorInfo(**meta["captioner"])
            bank = meta.get("bank")
        except FileNotFoundError:
            raise InputError(meta_path, "missing; re-run `neurrator narrate`") from None
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(meta_path, f"corrupt narrations metadata: {exc}") from None
        try:
            table = pd.read_parquet(table_path)
        except FileNotFoundError:
            raise InputError(table_path, "missing; re-run `neurrator narrate`") from None
        except Exception as exc:  # noqa: BLE001  (pyarrow raises several unrelated types for a damaged file)
            raise InputError(table_path, f"not a readable parquet table: {exc}") from None
        missing = [c for c in COLUMNS if c not in table]
        if missing:
            raise InputError(table_path, f"missing column(s) {', '.join(missing)}")
        try:
            narrations = cls(
                windows=table["window"].to_numpy(dtype=np.int64),
                pairs=table[["repeat", "frame"]].to_numpy(dtype=np.int64),
                sentences=tuple(table["narration"].astype(str)),
                references=tuple(tuple(str(r) for r in (refs if refs is not None else ())) for refs in table["references"]),
                retrieved_frame=table["retrieved_frame"].to_numpy(dtype=np.int64),
                copied=table["copied"].to_numpy(dtype=bool),
                narrator=narrator, captioner=captioner, bank=bank,
            )
        except (ValueError, TypeError) as exc:
            raise InputError(table_path, str(exc)) from None
        return narrations


def narrate_windows(
    narrator: Any,
    patches: torch.Tensor,
    *,
    windows: np.ndarray,
    pairs: np.ndarray,
    references: Sequence[Sequence[str]],
    captioner: NarratorInfo,
    bank: CaptionBank | None = None,
    progress: bool = False,
) -> Narrations:
    """Narrate ``patches`` (n, n_patches, dim) of the windows at rows ``windows`` ((n, 2) ``pairs``).

    Retrieval narrators (over ``bank``) also say which bank entry led each sentence
    (``retrieved_frame``); a sentence that is verbatim a caption of ``bank`` is flagged ``copied``.
    """
    if bank is not None and hasattr(narrator, "narrate_retrieved"):
        sentences, retrieved = narrator.narrate_retrieved(patches, progress=progress)
        retrieved_frame = bank.frames[retrieved.entries[:, 0]]
    else:
        sentences = narrator.narrate(patches, progress=progress)
        retrieved_frame = np.full(len(sentences), -1, dtype=np.int64)
    texts = bank.all_texts() if bank is not None else set()
    return Narrations(
        windows=np.asarray(windows, dtype=np.int64),
        pairs=np.asarray(pairs, dtype=np.int64),
        sentences=tuple(sentences),
        references=tuple(tuple(r) for r in references),
        retrieved_frame=np.asarray(retrieved_frame, dtype=np.int64),
        copied=np.array([s in texts for s in sentences], dtype=bool),
        narrator=NarratorInfo.of(narrator),
        captioner=captioner,
        bank=provenance(bank),
    )


def _problem(n: Narrations) -> str | None:
    count = len(n.sentences)
    if count == 0:
        return "no narrations"
    if n.pairs.shape != (count, 2):
        return f"expected ({count}, 2) (repeat, frame) rows, got {n.pairs.shape}"
    for name in ("windows", "retrieved_frame", "copied"):
        if getattr(n, name).shape != (count,):
            return f"{name} has shape {getattr(n, name).shape}, expected ({count},)"
    if len(n.references) != count:
        return f"{len(n.references)} reference lists for {count} narrations"
    if n.windows.min() < 0 or n.pairs.min() < 0:
        return "negative window, repeat or frame index"
    return None
