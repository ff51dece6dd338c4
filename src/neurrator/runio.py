"""A run's artefacts: the one module that knows which file of a run directory holds what.

Stages read and write through these functions; layers never see a run folder, and no stage
imports another. Every reader validates what it reads: a file another stage must have written
and did not is a :class:`~neurrator.core.errors.StageUnavailableError` saying which stage to
run, a damaged or inconsistent one an :class:`~neurrator.core.errors.InputError` naming it.
The typed objects keep their own file formats (``save``/``load`` in their layer); this module
says where they live. ``RunDir`` (:mod:`neurrator.rundir`) keeps the config and the manifest.

=============================  ==========================================  =========
path                           object                                      writer
=============================  ==========================================  =========
``ingest/dataset/``            ``preprocess.types.NeuralDataset``          ingest
``ingest/split.json``          ``preprocess.types.Split`` (the active one)  ingest
``ingest/splits/<name>.json``  every regime's ``Split``                    ingest
``ingest/stimulus.json``       ``data.types.Stimulus`` (a reload record)    ingest
``embed/targets.json``         ``vision.base.PatchTargets`` (cache pointer) embed
``train/checkpoint.*``         ``encoder.Neurrator``                       train
``narrate/predictions.*``      ``encoder.predictions.Predictions``         narrate
``narrate/narrations.*``       ``narrate.narrations.Narrations``           narrate
``analyze/<analysis>/``        ``analysis.result.AnalysisResult``          analyze
``lm_decode/``                 ``encoder.lm_session.LMDecodeResult``       lm_decode
=============================  ==========================================  =========
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir, atomic_write_json, sha256_file
from neurrator.data.stimulus_record import load_stimulus_record
from neurrator.data.types import Stimulus
from neurrator.encoder.predictions import Predictions
from neurrator.narrate.narrations import Narrations
from neurrator.preprocess.io import load_dataset, load_split
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.rundir import RunDir
from neurrator.vision.base import PatchTargets
from neurrator.vision.cache import Verify, load_targets

if TYPE_CHECKING:
    from neurrator.analysis.inputs import AnalysisInputs
    from neurrator.config import RunConfig
    from neurrator.encoder import Neurrator
    from neurrator.evaluate.benchmark import BenchmarkInputs

DATASET_DIR = "dataset"
SPLIT_FILE = "split.json"
SPLITS_DIR = "splits"
STIMULUS_FILE = "stimulus.json"
TARGETS_FILE = "targets.json"
WEIGHTS_FILE = "checkpoint.safetensors"
NARRATE_SUMMARY_FILE = "summary.json"


# ---- ingest ------------------------------------------------------------------------------------
def read_dataset(run: RunDir) -> NeuralDataset:
    """The binned, z-scored responses (memory-mapped)."""
    return load_dataset(run.require("ingest", DATASET_DIR))


def read_split(run: RunDir, regime: str | None = None) -> Split:
    """The active split, or the split of ``regime`` (``ingest/splits/<regime>.json``)."""
    if regime is None:
        return load_split(run.require("ingest", SPLIT_FILE))
    return load_split(run.require("ingest", f"{SPLITS_DIR}/{regime}.json"))


def split_regimes(run: RunDir) -> list[str]:
    """Names of the regimes ingest wrote a split for, sorted."""
    return sorted(p.stem for p in (run.stage_dir("ingest") / SPLITS_DIR).glob("*.json"))


def read_stimulus(run: RunDir) -> Stimulus:
    """The stimulus the run was ingested with (reloaded and checked against its content hash)."""
    return load_stimulus_record(run.require("ingest", STIMULUS_FILE))


# ---- embed -------------------------------------------------------------------------------------
def write_targets(run: RunDir, targets: PatchTargets, entry: Path, **record: Any) -> Path:
    """Point ``embed/targets.json`` at the cache entry ``entry`` holding ``targets``; ``record``
    adds fields (e.g. ``cache_hit``, ``seconds``)."""
    info = targets.info
    return atomic_write_json(run.stage_dir("embed") / TARGETS_FILE, {
        "entry": str(Path(entry).resolve()),
        "space": info.to_dict(),
        "stimulus_hash": targets.stimulus_hash,
        "shape": list(targets.patches.shape),
        "dtype": str(targets.patches.dtype),
        "is_stand_in": info.is_stand_in,
        **record,
    })


def read_targets(run: RunDir, *, verify: Verify = "size") -> PatchTargets:
    """The run's patch targets, memory-mapped, as pointed to by ``embed/targets.json``.

    Raises :class:`InputError` if the pointer is unreadable or the cache entry it names is gone,
    damaged, or was computed from other frames than the pointer records.
    """
    pointer = run.require("embed", TARGETS_FILE)
    try:
        record = json.loads(pointer.read_text())
        entry, stimulus_hash = record["entry"], record["stimulus_hash"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(pointer, f"corrupt targets pointer: {exc}") from None
    targets = load_targets(entry, verify=verify)
    if targets.stimulus_hash != stimulus_hash:
        raise InputError(pointer, "the cache entry holds targets of other frames; re-run `neurrator embed`")
    return targets


# ---- train -------------------------------------------------------------------------------------
def has_encoder(run: RunDir) -> bool:
    return (run.stage_dir("train") / WEIGHTS_FILE).is_file()


def read_encoder(run: RunDir, dataset: NeuralDataset, targets: PatchTargets | None = None) -> Neurrator:
    """The trained encoder, checked against the dataset's units (and the targets' space)."""
    from neurrator.encoder import Neurrator

    run.require("train", WEIGHTS_FILE)
    return Neurrator.load(run.stage_dir("train"), expect_units=dataset.unit_ids,
                          expect_space=None if targets is None else targets.info)


def checkpoint_id(run: RunDir) -> str:
    """Identity of the trained weights: ``train@`` and the first 16 hex digits of their SHA-256."""
    return "train@" + sha256_file(run.require("train", WEIGHTS_FILE))[:16]


# ---- narrate -----------------------------------------------------------------------------------
def write_narrated(run: RunDir, predictions: Predictions, narrations: Narrations, summary: dict) -> list[Path]:
    """Replace ``narrate/`` with the predictions, narrations and the stage summary, together or not at all."""
    out = run.stage_dir("narrate")
    with atomic_dir(out) as tmp:
        names = [p.name for p in (*predictions.save(tmp), *narrations.save(tmp))]
        atomic_write_json(tmp / NARRATE_SUMMARY_FILE, summary)
    return [out / n for n in (*names, NARRATE_SUMMARY_FILE)]


def read_predictions(run: RunDir) -> Predictions:
    return Predictions.load(_narrate_dir(run))


def read_narrations(run: RunDir) -> Narrations:
    return Narrations.load(_narrate_dir(run))


def read_narrated(run: RunDir, targets: PatchTargets) -> tuple[Predictions, Narrations]:
    """Predictions and narrations, checked against each other and against ``targets``."""
    folder = _narrate_dir(run)
    predictions, narrations = Predictions.load(folder), Narrations.load(folder)
    if predictions.patches.shape[1:] != targets.patches.shape[1:]:
        raise InputError(folder / "predictions.npy", f"predictions are {predictions.patches.shape[1:]} per window, "
                                                     f"targets {targets.patches.shape[1:]}")
    if predictions.frames.max(initial=0) >= targets.n_frames or narrations.frames.max() >= targets.n_frames:
        raise InputError(folder / "windows.npy", f"frame indices outside the stimulus's {targets.n_frames} frames")
    if narrations.windows.max() >= len(predictions):
        raise InputError(folder / "narrations.parquet", f"narrated window {narrations.windows.max()} is not among the "
                                                        f"{len(predictions)} predictions")
    if not np.array_equal(predictions.pairs[narrations.windows], narrations.pairs):
        raise InputError(folder / "narrations.parquet", "narrated (repeat, frame) pairs disagree with windows.npy")
    return predictions, narrations


def read_references(run: RunDir, stimulus: Stimulus) -> dict[int, list[str]]:
    """Reference captions per frame: the stimulus's, overridden by the narrate stage's captioner
    output for the frames it captioned (when the run has narrations)."""
    captions = {int(f): list(c) for f, c in stimulus.captions.items() if c}
    if (run.stage_dir("narrate") / "narrations.parquet").is_file():
        captions.update(read_narrations(run).reference_captions())
    if not captions:
        raise InputError(run.stage_dir("ingest") / STIMULUS_FILE,
                         f"no reference captions for {stimulus.name!r}: neither the stimulus nor the narrate "
                         "stage's captioner provided any")
    return captions


def _narrate_dir(run: RunDir) -> Path:
    return run.require("narrate", "narrations.parquet").parent


# ---- benchmark ---------------------------------------------------------------------------------
def read_regime_split(run: RunDir, config: RunConfig, name: str, dataset: NeuralDataset) -> Split | None:
    """The split of regime ``name`` from ingest; a leaky ``*_paper`` regime is built from the
    dataset's grid; ``None`` if neither (the benchmark table notes it)."""
    from neurrator.preprocess.splits import make_split

    if name in split_regimes(run):
        return read_split(run, name)
    if not name.endswith("_paper"):
        return None
    pp = config.preprocess
    return make_split(name, dataset.n_repeats, dataset.n_frames, pp.split_seed, val_fraction=pp.val_fraction,
                      test_fraction=pp.test_fraction, heldout_fraction=pp.heldout_frame_fraction, window=dataset.window,
                      bins_per_frame=dataset.bins_per_frame, jitter=config.encoder.jitter_bins)


def read_benchmark_inputs(run: RunDir, config: RunConfig, regimes: list[str] | None = None) -> BenchmarkInputs:
    """The benchmark's inputs from the run (ingest, embed, references, the trained encoder if
    any), with the splits of ``regimes`` (default ``evaluate.benchmark.regimes``) and always the
    active split (last). Regimes without a split are listed in ``context["missing_regimes"]``.
    The benchmark stage and the sweep's ``benchmark`` cells both start here."""
    from neurrator.evaluate import build_scorer
    from neurrator.evaluate.benchmark import BenchmarkInputs
    from neurrator.evaluate.scores import load_released_pool
    from neurrator.narrate import build_caption_bank, build_narrator

    ec, bc = config.evaluate, config.evaluate.benchmark
    dataset, stimulus, targets = read_dataset(run), read_stimulus(run), read_targets(run)
    active = read_split(run)
    found = {name: read_regime_split(run, config, name, dataset) for name in (bc.regimes if regimes is None else regimes)}
    missing = [name for name, split in found.items() if split is None]
    splits = {**{k: v for k, v in found.items() if v is not None and k != active.name}, active.name: active}

    def make_narrator(captions, train_frames):
        bank = build_caption_bank(config.narrate, targets, captions, train_frames)
        return build_narrator(config.narrate, name=bc.narrator, bank=bank)

    return BenchmarkInputs(
        dataset=dataset, targets=targets, splits=splits, active=active.name, frame_rate=stimulus.frame_rate,
        shot_of_frame=stimulus.shot_of_frame, captions=read_references(run, stimulus), make_narrator=make_narrator,
        scorer=build_scorer(ec), released_pool=load_released_pool(),
        checkpoint=run.stage_dir("train") if has_encoder(run) else None,
        context={"narrator": bc.narrator or config.narrate.narrator, "scorer": ec.scorer_model,
                 "stand_ins": stand_ins(run), "missing_regimes": missing},
    )


# ---- analyze -----------------------------------------------------------------------------------
def read_analysis_inputs(run: RunDir, config: RunConfig, needs: frozenset[str]) -> AnalysisInputs:
    """The analyses' inputs from the run (ingest, embed, train, references); the image corpus
    (``"corpus"``), its concept dictionary (``"concepts"``) and the session itself
    (``"session"``) only if ``needs`` them (``analysis.suite.needed_inputs``)."""
    from neurrator.analysis.corpus import build_corpus
    from neurrator.analysis.inputs import build_inputs

    dataset, split, stimulus, targets = read_dataset(run), read_split(run), read_stimulus(run), read_targets(run)
    corpus = None
    if "corpus" in needs:
        corpus = build_corpus(config.analysis.sae, config.vision, stimulus, targets, cache_dir=config.cache_dir)
    return build_inputs(
        config, dataset=dataset, split=split, stimulus=stimulus, targets=targets,
        estimator=read_encoder(run, dataset, targets), references=read_references(run, stimulus),
        corpus=corpus, concepts="concepts" in needs, session="session" in needs, stand_ins=stand_ins(run),
    )


def write_analysis(run: RunDir, result: AnalysisResult) -> Path:
    """Replace ``analyze/<result.name>/`` with the result's files, whole or not at all."""
    folder = run.stage_dir("analyze") / result.name
    with atomic_dir(folder) as tmp:
        result.save(tmp)
    return folder


def read_analysis(run: RunDir, name: str) -> AnalysisResult:
    return AnalysisResult.load(run.require("analyze", name))


def write_analysis_timings(run: RunDir, record: dict) -> Path:
    return atomic_write_json(run.stage_dir("analyze") / "timings.json", record)


# ---- manifest ----------------------------------------------------------------------------------
# ---- lm_decode ---------------------------------------------------------------------------------
def session_behaviour(run: RunDir, dataset: NeuralDataset, session_id: str):
    """The :class:`~neurrator.data.types.Behaviour` of ``session_id``, read (without spikes) from
    the NWB file ingest recorded for it in the dataset's metadata."""
    from neurrator.data.allen import read_behaviour

    for record in dataset.meta.get("sessions", []):
        if str(record.get("session_id")) == str(session_id):
            if not record.get("source"):
                raise InputError(None, f"the dataset does not record the file of session {session_id}; re-run ingest")
            return read_behaviour(record["source"], (dataset.stimulus,))
    raise InputError(None, f"session {session_id} is not in the ingested dataset")


def read_planted_units(run: RunDir, session_id: str):
    """A simulated session's planted ground truth per unit (DataFrame indexed by unit id:
    ``true_cell_type``, ``running_beta``, ...) from ``simulate/``; ``None`` when the run's
    sessions were not simulated here or the session is not among them."""
    import pandas as pd

    index = run.stage_dir("simulate") / "sessions.json"
    if not index.is_file():
        return None
    for record in json.loads(index.read_text()).get("sessions", []):
        if str(record.get("session_id")) == str(session_id):
            path = index.parent / f"{Path(record['file']).stem}.truth.json"
            if not path.is_file():
                return None
            try:
                return pd.DataFrame(json.loads(path.read_text())["units"]).set_index("unit_id")
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise InputError(path, f"not a readable ground-truth file: {exc}") from None
    return None


def write_lm_decode(run: RunDir, result) -> list[Path]:
    """Save an :class:`~neurrator.encoder.lm_session.LMDecodeResult` into ``lm_decode/``."""
    return result.save(run.stage_dir("lm_decode"))


def read_lm_decoder(run: RunDir, target: str, dataset: NeuralDataset, targets: PatchTargets | None = None):
    """The lm_decode stage's pretrained seed-0 :class:`~neurrator.encoder.lm_estimator.LMDecoder`
    of ``target`` (``"vision"``, ``"running_speed"``, ...), checked against the dataset's units
    (and the targets' space)."""
    from neurrator.encoder.lm_estimator import LMDecoder
    from neurrator.encoder.lm_estimator import WEIGHTS_FILE as LM_WEIGHTS
    from neurrator.encoder.lm_session import checkpoint_name

    folder = run.require("lm_decode", f"{checkpoint_name(target)}/{LM_WEIGHTS}").parent
    return LMDecoder.load(folder, expect_units=dataset.unit_ids,
                          expect_space=None if targets is None else targets.info)


def lm_decoder_checkpoint_id(run: RunDir, target: str) -> str:
    """Identity of a saved LM decoder: ``lm_decode/<target>@`` and 16 hex digits of its weights' SHA-256."""
    from neurrator.encoder.lm_estimator import WEIGHTS_FILE as LM_WEIGHTS
    from neurrator.encoder.lm_session import checkpoint_name

    path = run.require("lm_decode", f"{checkpoint_name(target)}/{LM_WEIGHTS}")
    return f"lm_decode/{target}@" + sha256_file(path)[:16]


def read_lm_decode(run: RunDir) -> dict:
    """``lm_decode/`` as ``{"summary": dict, "tables": name → DataFrame}``, and the salience
    result (``"salience"``: :class:`AnalysisResult` or ``None``)."""
    from neurrator.encoder.lm_session import SALIENCE_DIR, load_outputs

    outputs = load_outputs(run.require("lm_decode", "summary.json").parent)
    folder = run.stage_dir("lm_decode") / SALIENCE_DIR
    outputs["salience"] = AnalysisResult.load(folder) if (folder / "summary.json").is_file() else None
    return outputs


def stand_ins(run: RunDir) -> dict[str, str]:
    """Components of this run that are offline stand-ins (from the manifest)."""
    return dict(run.manifest().get("stand_ins", {}))
