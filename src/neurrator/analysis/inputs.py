"""What the analyses read: one immutable bundle of test windows, models as small callables,
references and the corpus, built once from a run's objects by :func:`build_inputs`.

Every analysis is ``run(inputs, config) -> AnalysisResult`` over the same
:class:`AnalysisInputs`; none of them changes it, so they can run in any order or alone.
Tests and benchmarks build the bundle from synthetic objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from neurrator.analysis.common import CachedEncoder, CachedNarrator
from neurrator.analysis.corpus import Corpus
from neurrator.core.errors import InputError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from neurrator.analysis.concepts import ConceptDictionary
    from neurrator.config import RunConfig
    from neurrator.data.types import Stimulus
    from neurrator.preprocess.types import NeuralDataset, Split
    from neurrator.vision.base import PatchTargets

#: (windows (n, T, n_units), unit_mask (n_units,) or (n, n_units)) → patches (n, n_patches, dim).
EncoderFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
#: populations' subset spec → (n_units,) bool mask (``neurrator.preprocess.subsets.subset_mask``).
MaskFn = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class SessionInputs:
    """The run's session itself, for analyses that fit a model of their own (``dina``).

    Attributes
    ----------
    dataset : the z-scored session (windows are cut from it on demand).
    split : the run's split; models are fitted on ``split.train`` and validated on ``split.val``.
    targets : (n_frames, n_patches, dim) vision-space patch targets.
    encoder_params : the run's ``encoder`` config section (architecture of fitted models).
    """

    dataset: NeuralDataset
    split: Split
    targets: PatchTargets
    encoder_params: dict[str, Any]


@dataclass(frozen=True)
class AnalysisInputs:
    """Everything the analyses read.

    Attributes
    ----------
    units : units table (rows = encoder input columns): area, cell_type, ...
    windows : (n_windows, T, n_units) float32 z-scored test windows.
    frames : (n_windows,) stimulus frame of each window.
    encoder : batched-callable encoder, see :data:`EncoderFn`; differentiable in ``windows``.
    narrate : the analyses' narrator (wrapped in a :class:`CachedNarrator`).
    narrate_fast : a fast narrator for the many scaling points (may be ``narrate``).
    encode : sentence encoder (SBERT) with a cache.
    references : frame → reference captions.
    reference_score : (sentences, frames) → (n,) SBERT score against those frames' references.
    random_caption_floor : mean SBERT of a random other caption against the references.
    frame_targets : (n_frames, n_patches, dim) true patches of every frame (may be a memmap).
    mask : subset spec → unit mask.
    corpus : captioned images for the SAE and the neuron descriptions, or ``None``.
    concepts : the SAE concept dictionary of the corpus, or ``None``.
    grid : (rows, cols) of the patch grid.
    shot_of_frame : (n_frames,) shot of each stimulus frame, or ``None``; shuffled controls pair across shots.
    batch_size : windows per encoder call.
    narrate_batch_windows : windows narrated per narrator call (bounds the patches held at once).
    stand_ins : component → description of every offline stand-in the results depend on.
    session : the session, split and targets themselves (:class:`SessionInputs`), or ``None``.
    """

    units: pd.DataFrame
    windows: torch.Tensor
    frames: np.ndarray
    encoder: EncoderFn
    narrate: CachedNarrator
    narrate_fast: CachedNarrator
    encode: CachedEncoder
    references: dict[int, list[str]]
    reference_score: Callable[[list[str], np.ndarray], np.ndarray]
    random_caption_floor: float
    frame_targets: np.ndarray
    mask: MaskFn
    corpus: Corpus | None
    grid: tuple[int, int]
    concepts: ConceptDictionary | None = None
    shot_of_frame: np.ndarray | None = None
    #: Hz of the movie (``None`` for an image set); with no shots, statistics use 1 s blocks.
    frame_rate: float | None = None
    batch_size: int = 256
    narrate_batch_windows: int = 768
    seed: int = 0
    stand_ins: dict[str, str] = field(default_factory=dict)
    session: SessionInputs | None = None

    @property
    def n_units(self) -> int:
        return int(self.windows.shape[2])

    def subset(self, window_index: np.ndarray) -> AnalysisInputs:
        """The same inputs restricted to some test windows."""
        return replace(self, windows=self.windows[window_index], frames=self.frames[window_index])

    @torch.no_grad()
    def predict(self, unit_mask: np.ndarray) -> torch.Tensor:
        """(n_units,) bool → (n_windows, n_patches, dim) float32, in batches."""
        mask = torch.from_numpy(np.asarray(unit_mask, dtype=bool))
        return torch.cat([self.encoder(self.windows[i : i + self.batch_size], mask).float()
                          for i in range(0, len(self.windows), self.batch_size)])

    @torch.no_grad()
    def predict_many(self, unit_masks: np.ndarray) -> torch.Tensor:
        """(m, n_units) bool → (m, n_windows, n_patches, dim): one batch holds several masks."""
        masks = torch.from_numpy(np.asarray(unit_masks, dtype=bool))
        m, n = len(masks), len(self.windows)
        x = self.windows.unsqueeze(0).expand(m, -1, -1, -1).reshape(m * n, *self.windows.shape[1:])
        per_window = masks.repeat_interleave(n, dim=0)
        out = torch.cat([self.encoder(x[i : i + self.batch_size], per_window[i : i + self.batch_size]).float()
                         for i in range(0, m * n, self.batch_size)])
        return out.reshape(m, n, *out.shape[1:])

    def pools(self, specs: dict[str, str]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
        """Masks of the pools that exist in this run, and why the others were skipped."""
        masks, skipped = {}, {}
        for name, spec in specs.items():
            try:
                masks[name] = self.mask(spec)
            except InputError as exc:
                skipped[name] = exc.problem
        return masks, skipped

    def population_narrations(self, masks: dict[str, np.ndarray]) -> dict[str, list[str]]:
        """Each population's narrations of the test windows, several populations per narrator call."""
        n = len(self.frames)
        per_call = max(1, self.narrate_batch_windows // max(n, 1))
        names = list(masks)
        out: dict[str, list[str]] = {}
        for start in range(0, len(names), per_call):
            chunk = names[start : start + per_call]
            said = self.narrate(torch.cat([self.predict(masks[name]) for name in chunk]))
            out.update({name: said[i * n : (i + 1) * n] for i, name in enumerate(chunk)})
        return out

    def used(self, config: BaseModel, *, narrator: str | None = None, n_windows: int | None = None,
             **extra: Any) -> dict:
        """The record of what an analysis used (``AnalysisResult.inputs``)."""
        return {"narrator": narrator, "n_windows": len(self.frames) if n_windows is None else int(n_windows),
                "n_units": self.n_units, "seed": self.seed, "config": config.model_dump(mode="json"),
                "stand_ins": dict(self.stand_ins), **extra}


def _encoder_fn(estimator: Any) -> EncoderFn:
    """(windows, unit mask) → patches, through the trained estimator's torch module."""
    module = estimator.model_
    module.eval()

    def encode(x: torch.Tensor, unit_mask: torch.Tensor) -> torch.Tensor:
        return module(x, unit_mask)

    return encode


def build_inputs(
    config: RunConfig,
    *,
    dataset: NeuralDataset,
    split: Split,
    stimulus: Stimulus,
    targets: PatchTargets,
    estimator: Any,
    references: dict[int, list[str]],
    corpus: Corpus | None = None,
    concepts: bool = False,
    session: bool = False,
    stand_ins: dict[str, str] | None = None,
) -> AnalysisInputs:
    """The analyses' inputs from a run's objects.

    Parameters
    ----------
    config : the run's config (analysis, narrate and evaluate sections are used).
    estimator : the trained ``encoder.Neurrator``.
    references : frame → reference captions (``runio.read_references``).
    corpus : images for the SAE and neuron descriptions (:func:`~neurrator.analysis.corpus.build_corpus`).
    concepts : also build the SAE concept dictionary of ``corpus``.
    session : also pass the session, split and targets themselves (:class:`SessionInputs`).
    """
    from neurrator.core.sampling import evenly_spaced
    from neurrator.evaluate import build_scorer
    from neurrator.evaluate.scores import ReferenceBank, load_word_salad, score_windows
    from neurrator.narrate import build_caption_bank, build_narrator
    from neurrator.preprocess.subsets import subset_mask
    from neurrator.preprocess.types import by_frame

    cfg = config.analysis
    test = by_frame(split.test)
    test = test[evenly_spaced(len(test), cfg.max_windows)]
    frames = test[:, 1].astype(np.int64)
    missing = sorted(set(frames.tolist()) - set(references))
    if missing:
        raise InputError(None, f"{len(missing)} test frames have no reference caption, e.g. {missing[:5]}")

    scorer = build_scorer(config.evaluate)
    encode = CachedEncoder(scorer.encode)
    bank = ReferenceBank(references, scorer)
    floors = score_windows([references[int(frames[0])][0]] * len(frames), frames, bank, scorer,
                           word_salad=load_word_salad(config.evaluate.word_salad_path),
                           shot_of_frame=stimulus.shot_of_frame, seed=config.seed + config.evaluate.seed)

    caption_bank = build_caption_bank(config.narrate, targets, references, split.train_frames)

    def narrator(name: str | None) -> CachedNarrator:
        backend = build_narrator(config.narrate, name=name, bank=caption_bank)
        return CachedNarrator(backend.narrate, backend.name + (" (offline stand-in)" if backend.is_stand_in else ""))

    narrate = narrator(cfg.narrator)
    dictionary = None
    if concepts and corpus is not None:
        from neurrator.analysis.concepts import build_concept_dictionary

        dictionary = build_concept_dictionary(corpus, cfg.sae, encode, seed=config.seed)
    return AnalysisInputs(
        units=dataset.units,
        windows=torch.from_numpy(np.ascontiguousarray(dataset.windows(test), dtype=np.float32)),
        frames=frames,
        encoder=_encoder_fn(estimator),
        narrate=narrate,
        narrate_fast=narrate if cfg.scaling.narrator == cfg.narrator else narrator(cfg.scaling.narrator),
        encode=encode,
        references=references,
        reference_score=lambda sentences, fr: bank.mean_cosine(encode(list(sentences)), np.asarray(fr)),
        random_caption_floor=float(np.nanmean(floors["random_caption"])),
        frame_targets=targets.patches,
        mask=lambda spec: subset_mask(dataset.units, spec),
        corpus=corpus,
        concepts=dictionary,
        grid=tuple(targets.info.grid),
        shot_of_frame=stimulus.shot_of_frame,
        frame_rate=stimulus.frame_rate,
        batch_size=cfg.batch_size,
        narrate_batch_windows=cfg.narrate_batch_windows,
        seed=config.seed,
        stand_ins=dict(stand_ins or {}),
        session=SessionInputs(dataset, split, targets, config.encoder.model_dump(exclude_none=True)) if session else None,
    )
