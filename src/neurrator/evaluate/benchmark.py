"""The benchmark: every method on every hold-out regime under one budget, scored one way.

:func:`run_benchmark` takes explicit inputs (:class:`BenchmarkInputs`, no run directory) and
returns a :class:`~neurrator.evaluate.results.BenchmarkTable`. For each regime it z-scores the
responses with that regime's training windows, builds the task
(:func:`~neurrator.evaluate.methods.make_task`), runs each method's cell
(:func:`~neurrator.evaluate.methods.run_cell`) and scores the predicted test patches with
:func:`score_cell`:

- **identification** (headline readout): cosine between full patch tensors centred on the mean
  training-frame target; candidates = every stimulus frame (R@1, R@10, median rank, ±1 s),
  the frames of the true shot/block (within-shot R@1: a shot lookup cannot pass), and, where
  the regime holds frames out, the held-out frames only (zero-shot; "not applicable" for
  methods that only answer with training frames). The pooled readout is a second column.
  Chance levels come from each window's candidate set; intervals are block bootstraps of
  the per-window hits; p-values are block-level Wilcoxon tests of hit − chance, Holm-corrected
  within each table.
- **CKA and kNN purity** (full patch tensors), each with a permutation chance level (the 95th
  percentile of ≥ 100 permuted pairings of predicted and true rows) and, per regime, the **shot oracle** (the
  mean target of the true shot's frames) beside it.
- **sentences** (:mod:`neurrator.evaluate.scores`): the held-out-caption headline (the
  narrator's caption bank never holds the caption that is scored), the released-script
  compatible definition, and the copy rate.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from neurrator.core.errors import InputError
from neurrator.core.linalg import mean_patch
from neurrator.core.sampling import evenly_spaced
from neurrator.evaluate import scores as sentence_scores
from neurrator.evaluate.base import SentenceScorer
from neurrator.evaluate.embedding import (
    Identification,
    centred_cosine,
    centred_gram,
    cka_from_grams,
    identify,
    knn_sets,
    pooled,
    purity_of_sets,
    same_group,
    tolerance_frames,
)
from neurrator.evaluate.methods import (
    BENCHMARK_METHODS,
    BenchmarkMethod,
    BenchmarkTask,
    Budget,
    CellResult,
    make_task,
    run_cell,
)
from neurrator.evaluate.results import BenchmarkTable, Column, MethodRow, Metric, RegimeInfo
from neurrator.evaluate.stats import (
    block_bootstrap_ci,
    block_description,
    block_ids,
    holm,
    paired_test,
    permutation_chance,
)
from neurrator.preprocess.dataset import rezscore, select_units
from neurrator.preprocess.splits import measure_overlap
from neurrator.preprocess.types import NeuralDataset, Split, by_frame
from neurrator.vision.base import PatchTargets

#: Narrator factory: (captions the bank may hold, training frames) → an object with ``narrate``.
NarratorFactory = Callable[[dict[int, list[str]], np.ndarray], object]

#: Every metric key the benchmark writes, with what it means.
COLUMNS: dict[str, Column] = {
    "sbert": Column("SBERT (held-out caption)", "cosine between the narration and the true frame's held-out reference "
                    "caption; the narrator's caption bank holds only the frame's other captions (headline)"),
    "sbert_shuffled": Column("SBERT, other-shot pairing", "the same narration against the held-out caption of a test "
                             "window of another shot (block); the floor the headline must beat"),
    "released": Column("SBERT (released script)", "released-script compatible: cosine to the true frame's first "
                       "reference caption (the bank holds every caption)"),
    "released_shuffled": Column("released shuffled", "released-script compatible: references under one global "
                                "random permutation"),
    "released_floor": Column("released floor", "released-script compatible: mean cosine of the narration to each of "
                             "the released script's 30 word-salad sentences"),
    "copy_rate": Column("copy rate", "fraction of narrations identical to a reference caption of the scored frame",
                        kind="fraction", higher_is_better=False),
    "cka": Column("CKA", "linear CKA between predicted and true full patch tensors of the test windows"),
    "cka_pooled": Column("CKA (pooled)", "linear CKA between predicted and true patch tensors pooled over patches"),
    "knn_purity": Column("kNN purity", "fraction of each window's k nearest test windows (predicted full patch "
                         "tensors, cosine) also among its k nearest in true-target space"),
    "r1": Column("R@1", "true frame ranked first among every stimulus frame (centred full-patch cosine)",
                 kind="fraction"),
    "r10": Column("R@10", "true frame in the top 10 among every stimulus frame (centred full-patch cosine)",
                  kind="fraction"),
    "median_rank": Column("median rank", "median rank of the true frame among every stimulus frame (centred "
                          "full-patch cosine)", kind="rank", higher_is_better=False),
    "within_1s": Column("±1 s", "retrieved frame within ±1 s of the true one (CEBRA's criterion; centred "
                        "full-patch cosine, every stimulus frame a candidate)", kind="fraction"),
    "r10_pooled": Column("R@10 (pooled)", "R@10 with the pooled readout (mean over patches, centred on the pooled "
                         "mean training target)", kind="fraction"),
    "within_1s_pooled": Column("±1 s (pooled)", "±1 s with the pooled readout", kind="fraction"),
    "within_shot_r1": Column("within-shot R@1", "true frame ranked first among the frames of its own shot (block): "
                             "a shot lookup cannot pass", kind="fraction"),
    "zero_shot_r1": Column("zero-shot R@1", "true frame ranked first among the held-out frames only", kind="fraction"),
    "zero_shot_r10": Column("zero-shot R@10", "true frame in the top 10 among the held-out frames only",
                            kind="fraction"),
    "zero_shot_within_1s": Column("zero-shot ±1 s", "retrieved held-out frame within ±1 s of the true one",
                                  kind="fraction"),
}

#: The identification metrics that decide whether a regime is "at chance on frame identity".
IDENTITY_KEYS = ("r1", "r10", "within_1s", "within_shot_r1")


@dataclass(frozen=True)
class BenchmarkSettings:
    """Evaluation settings shared by every cell (from ``evaluate`` and ``evaluate.benchmark``)."""

    max_test_windows: int = 240
    n_bootstrap: int = 2000
    ci_level: float = 0.95
    n_permutations: int = 200
    knn_k: int = 10
    tolerance_s: float = 1.0
    block_seconds: float = 1.0
    basis_components: int = 128
    n_time_chunks: int = 2
    seed: int = 0


def benchmark_settings(config) -> BenchmarkSettings:
    """The :class:`BenchmarkSettings` of a run's config (``evaluate`` and ``evaluate.benchmark``)."""
    ec, bc = config.evaluate, config.evaluate.benchmark
    return BenchmarkSettings(
        max_test_windows=bc.max_test_windows_quick if bc.quick else bc.max_test_windows, n_bootstrap=ec.n_bootstrap,
        ci_level=ec.ci_level, n_permutations=bc.n_permutations, knn_k=ec.knn_k, tolerance_s=ec.frame_id_tolerance_s,
        basis_components=bc.target_components, n_time_chunks=bc.n_time_chunks, seed=config.seed + ec.seed,
    )


def benchmark_methods(config, regime: str, active: str) -> list[BenchmarkMethod]:
    """The configured methods of ``regime`` (``active_only_methods`` too on the ``active`` split)."""
    bc = config.evaluate.benchmark
    names = bc.methods + (bc.active_only_methods if regime == active else [])
    return [BENCHMARK_METHODS.create(n, config=config) for n in dict.fromkeys(names)]


@dataclass
class BenchmarkInputs:
    """Everything the benchmark reads, as explicit objects.

    Attributes
    ----------
    dataset : the ingested responses (z-scored with any split; each regime re-z-scores).
    targets : (n_frames, n_patches, dim) patch targets.
    splits : regime name → :class:`Split`; ``active`` names the run's split (Tables A2/A3).
    frame_rate : Hz of the movie, ``None`` for an image set.
    shot_of_frame : (n_frames,) shot id per frame, or ``None`` (1 s blocks are used instead).
    captions : frame → reference captions.
    make_narrator : narrator over a caption bank (see :data:`NarratorFactory`).
    scorer : sentence scorer (SBERT).
    released_pool : the released script's 30 word-salad sentences.
    checkpoint : the run's trained encoder folder, for the checkpoint row.
    context : extra provenance for the table (narrator name, scorer, stand-ins, ...).
    """

    dataset: NeuralDataset
    targets: PatchTargets
    splits: dict[str, Split]
    active: str
    frame_rate: float | None
    shot_of_frame: np.ndarray | None
    captions: dict[int, list[str]]
    make_narrator: NarratorFactory
    scorer: SentenceScorer
    released_pool: list[str]
    checkpoint: Path | None = None
    context: dict = field(default_factory=dict)


def _log(message: str) -> None:
    print(f"[benchmark] {message}", file=sys.stderr, flush=True)


def test_windows(split: Split, limit: int) -> np.ndarray:
    """The split's test windows ordered by frame then repeat, evenly thinned to ``limit`` (0 = all)."""
    pairs = by_frame(split.test)
    return pairs[evenly_spaced(len(pairs), limit)]


def run_benchmark(
    inputs: BenchmarkInputs,
    methods: Callable[[str], list[BenchmarkMethod]],
    budget: Budget,
    settings: BenchmarkSettings,
) -> BenchmarkTable:
    """Run ``methods(regime)`` on every regime of ``inputs.splits`` and return the table."""
    regimes: dict[str, RegimeInfo] = {}
    rows: list[MethodRow] = []
    for name, split in inputs.splits.items():
        regime, regime_rows = run_regime(inputs, split, methods(name), budget, settings)
        regimes[name] = regime
        rows += regime_rows
    table = BenchmarkTable(budget=budget, active=inputs.active, regimes=regimes, rows=rows, columns=dict(COLUMNS),
                           context={**inputs.context, "seed": settings.seed, "frame_rate": inputs.frame_rate,
                                    "n_units": inputs.dataset.n_units, "n_frames": inputs.targets.n_frames,
                                    "settings": settings.__dict__})
    apply_holm(table)
    return table


def run_regime(inputs: BenchmarkInputs, split: Split, methods: list[BenchmarkMethod], budget: Budget,
               settings: BenchmarkSettings) -> tuple[RegimeInfo, list[MethodRow]]:
    """Every method on one split: fit, predict, narrate, score."""
    setup = prepare_regime(inputs, split, budget, settings)
    regime, rows = setup.info, []
    for method in methods:
        _log(f"{setup.split.name}: {method.name} ({'iterative' if method.iterative else 'closed form'})")
        try:
            rows.append(run_method(setup, method, budget, settings))
        except InputError as exc:
            regime.notes.append(f"{method.name}: not run ({exc.problem})")
    regime.all_at_chance = bool(rows) and not any(
        r.metrics[k].above_chance for r in rows for k in IDENTITY_KEYS if k in r.metrics)
    if regime.all_at_chance:
        regime.notes.append("Every method is at chance on frame identity here (no identification interval lies "
                            "above its chance level): sentence scores above the floors reflect shared content, "
                            "not frame-specific decoding.")
    return regime, rows


@dataclass
class RegimeSetup:
    """One regime made ready for its methods (shared by every method of the regime).

    Attributes
    ----------
    split : the split, its train/val overlap with the test windows measured.
    task : the :class:`BenchmarkTask` (responses z-scored with this split's training windows).
    test : (n, 2) the scored test windows (:func:`test_windows`).
    context : the scoring context (embedding context, narrator, held-out captions).
    info : the regime's table entry (sizes, leakage, shot oracle, notes).
    """

    split: Split
    task: BenchmarkTask
    test: np.ndarray
    context: CellContext
    info: RegimeInfo

    def with_units(self, mask: np.ndarray) -> RegimeSetup:
        """The same regime for one more cell, with only the units where ``mask`` is true
        (scoring context shared). The task is a fresh copy that keeps no fitted models of
        earlier cells; its spike-feature cache is shared when every unit is kept."""
        mask = np.asarray(mask, dtype=bool)
        if mask.all():
            task = replace(self.task, _fits={})
        else:
            task = replace(self.task, dataset=select_units(self.task.dataset, mask), _features={}, _fits={})
        return replace(self, task=task, info=replace(self.info, notes=list(self.info.notes)))


def prepare_regime(inputs: BenchmarkInputs, split: Split, budget: Budget, settings: BenchmarkSettings) -> RegimeSetup:
    """The task, test windows, scoring context and table entry of one split."""
    overlap = split.overlap
    if overlap is None:  # an older split file: measure it here
        overlap = measure_overlap(np.concatenate([split.train, split.val]), split.test, window=split.window,
                                  bins_per_frame=split.bins_per_frame, jitter=split.jitter,
                                  test_jitter=split.test_jitter)
        split = split.with_overlap(overlap)
    dataset = inputs.dataset if inputs.dataset.meta.get("split") == split.name else rezscore(inputs.dataset, split)
    task = make_task(dataset, inputs.targets, split, budget, basis_components=settings.basis_components,
                     n_time_chunks=settings.n_time_chunks, checkpoint=inputs.checkpoint)
    test = test_windows(split, settings.max_test_windows)
    frames = test[:, 1]
    missing = sorted(set(frames.tolist()) - set(inputs.captions))
    if missing:
        raise ValueError(f"split {split.name!r}: {len(missing)} test frames have no reference caption, e.g. {missing[:5]}")
    context = CellContext.build(inputs, split, test, settings)
    regime = RegimeInfo(
        name=split.name, description=split.description, leakage=split.leakage(),
        n_train_windows=len(task.split.train), n_val_windows=len(task.split.val), n_test_windows=len(test),
        n_test_frames=len(np.unique(frames)), n_blocks=len(np.unique(context.blocks)),
        blocks=context.embedding.block_text, holds_out_frames=context.embedding.heldout_frames is not None,
        reference=context.embedding.shot_oracle(),
    )
    if regime.leaky:
        regime.notes.append(f"LEAKY: {overlap:.1%} of test windows share time bins with training/validation windows.")
    return RegimeSetup(split, task, test, context, regime)


def run_method(setup: RegimeSetup, method: BenchmarkMethod, budget: Budget, settings: BenchmarkSettings, *,
               seed: int | None = None) -> MethodRow:
    """One method's row on a prepared regime: :func:`run_cell` (fit with ``seed``, default
    ``settings.seed``; predict the test windows), then :func:`score_cell`. Raises
    :class:`InputError` if the method does not apply (e.g. the checkpoint on another split)."""
    cell = run_cell(method, setup.task, budget, seed=settings.seed if seed is None else seed, test_pairs=setup.test)
    return MethodRow(regime=setup.split.name, method=cell.method, family=cell.family, iterative=cell.iterative,
                     answers_unseen_frames=cell.answers_unseen_frames, fit=cell.fit,
                     metrics=score_cell(cell, setup.context, settings))


# ---- scoring one cell ---------------------------------------------------------------------------


@dataclass
class EmbeddingContext:
    """What the embedding metrics need per regime (computed once, shared by every method).

    ``group_of_frame`` is the shot of every stimulus frame when shots are known, else its
    contiguous ``block_seconds`` block (the image itself for an image set); ``blocks`` is the
    group of each test window.
    """

    frames: np.ndarray
    blocks: np.ndarray
    block_text: str
    group_of_frame: np.ndarray
    targets: np.ndarray
    mean_target: np.ndarray
    pooled_targets: np.ndarray
    true: np.ndarray
    true_gram: np.ndarray
    true_gram_pooled: np.ndarray
    true_knn: np.ndarray
    tolerance: int
    heldout_frames: np.ndarray | None

    @classmethod
    def build(cls, targets: np.ndarray, frames: np.ndarray, train_frames: np.ndarray, *, shot_of_frame, frame_rate,
              settings: BenchmarkSettings, heldout_frames: np.ndarray | None = None) -> EmbeddingContext:
        """``targets``: (n_frames, n_patches, dim); ``frames``: (n,) test frames; ``heldout_frames``:
        the zero-shot candidates (``None`` if the regime holds no frames out)."""
        frames = np.asarray(frames, dtype=np.int64)
        n_frames = len(targets)
        group = (np.asarray(shot_of_frame, dtype=np.int64) if shot_of_frame is not None
                 else block_ids(np.arange(n_frames), frame_rate=frame_rate, block_seconds=settings.block_seconds))
        true = np.asarray(targets[frames], dtype=np.float32)
        k = min(settings.knn_k, len(frames) - 1)
        return cls(
            frames=frames, blocks=group[frames],
            block_text=block_description(shots_known=shot_of_frame is not None, frame_rate=frame_rate,
                                         block_seconds=settings.block_seconds),
            group_of_frame=group, targets=targets, mean_target=mean_patch(targets, train_frames),
            pooled_targets=pooled(targets), true=true, true_gram=centred_gram(true),
            true_gram_pooled=centred_gram(pooled(true)), true_knn=knn_sets(true, k),
            tolerance=tolerance_frames(frame_rate, settings.tolerance_s), heldout_frames=heldout_frames,
        )

    def shot_oracle(self) -> dict[str, Metric]:
        """CKA of an oracle that knows only the shot: it predicts the mean target of the true shot's frames."""
        oracle = np.empty_like(self.true)
        for g in np.unique(self.blocks):
            oracle[self.blocks == g] = mean_patch(self.targets, np.flatnonzero(self.group_of_frame == g))
        return {
            "shot_oracle_cka": Metric(cka_from_grams(centred_gram(oracle), self.true_gram),
                                      note=f"CKA of an oracle that knows only the shot ({self.block_text})"),
            "shot_oracle_cka_pooled": Metric(cka_from_grams(centred_gram(pooled(oracle)), self.true_gram_pooled),
                                             note="pooled CKA of the shot oracle"),
        }


@dataclass
class CellContext:
    """Per-regime scoring context: the embedding context plus narrator and captions."""

    inputs: BenchmarkInputs
    split: Split
    embedding: EmbeddingContext
    heldout_caption: dict[int, str]
    narrator: object

    @property
    def frames(self) -> np.ndarray:
        return self.embedding.frames

    @property
    def blocks(self) -> np.ndarray:
        return self.embedding.blocks

    @classmethod
    def build(cls, inputs: BenchmarkInputs, split: Split, test: np.ndarray, settings: BenchmarkSettings) -> CellContext:
        holds_out = not np.isin(split.test_frames, split.train_frames).any()
        embedding = EmbeddingContext.build(inputs.targets.patches, test[:, 1], split.train_frames,
                                           shot_of_frame=inputs.shot_of_frame, frame_rate=inputs.frame_rate,
                                           settings=settings, heldout_frames=split.test_frames if holds_out else None)
        bank, heldout = sentence_scores.heldout_caption_split(inputs.captions)
        return cls(inputs, split, embedding, heldout, inputs.make_narrator(bank, split.train_frames))


def _rate(values: np.ndarray, chance: np.ndarray, blocks: np.ndarray, settings: BenchmarkSettings) -> Metric:
    """A per-window hit rate with its block-bootstrap CI, chance, and block-level test against chance."""
    ci = block_bootstrap_ci(values, blocks, n_resamples=settings.n_bootstrap, level=settings.ci_level, seed=settings.seed)
    test = paired_test(values, chance, blocks)
    return Metric(ci.mean, ci, float(np.mean(chance)), test.p_value)


def _identification_metrics(ident: Identification, blocks, settings, prefix: str = "") -> dict[str, Metric]:
    return {
        f"{prefix}r1": _rate(ident.r1, ident.r1_chance, blocks, settings),
        f"{prefix}r10": _rate(ident.r10, ident.r10_chance, blocks, settings),
        f"{prefix}within_1s": _rate(ident.within_tol, ident.within_tol_chance, blocks, settings),
    }


def embedding_metrics(predicted: np.ndarray, ctx: EmbeddingContext, settings: BenchmarkSettings, *,
                      answers_unseen_frames: bool = True) -> tuple[dict[str, Metric], Identification]:
    """Identification (headline and pooled readouts, within-shot, zero-shot), CKA and kNN purity
    of ``predicted`` (n, n_patches, dim) patch tensors of the context's test windows.

    Returns the metrics and the headline :class:`Identification` (per-window ranks).
    """
    frames, blocks = ctx.frames, ctx.blocks
    all_frames = np.arange(len(ctx.targets))
    metrics: dict[str, Metric] = {}

    # Headline readout: full patch tensors centred on the mean training-frame target.
    sims = centred_cosine(predicted, ctx.targets, ctx.mean_target)
    full = identify(sims, frames, all_frames, tolerance_frames=ctx.tolerance)
    metrics.update(_identification_metrics(full, blocks, settings))
    metrics["median_rank"] = Metric(float(np.median(full.rank)), chance=float(np.median(full.rank_chance)))
    within = identify(sims, frames, all_frames, tolerance_frames=ctx.tolerance,
                      allowed=same_group(frames, all_frames, ctx.group_of_frame))
    metrics["within_shot_r1"] = _rate(within.r1, within.r1_chance, blocks, settings)

    # Pooled readout, second column.
    sims_pooled = centred_cosine(pooled(predicted), ctx.pooled_targets, ctx.mean_target.mean(axis=0))
    pooled_ident = identify(sims_pooled, frames, all_frames, tolerance_frames=ctx.tolerance)
    metrics["r10_pooled"] = _rate(pooled_ident.r10, pooled_ident.r10_chance, blocks, settings)
    metrics["within_1s_pooled"] = _rate(pooled_ident.within_tol, pooled_ident.within_tol_chance, blocks, settings)

    # Zero-shot: candidates are the held-out frames only.
    if ctx.heldout_frames is not None:
        if answers_unseen_frames:
            held = ctx.heldout_frames
            zs = identify(sims[:, held], frames, held, tolerance_frames=ctx.tolerance)
            metrics.update(_identification_metrics(zs, blocks, settings, prefix="zero_shot_"))
        else:
            for key in ("zero_shot_r1", "zero_shot_r10", "zero_shot_within_1s"):
                metrics[key] = Metric.not_applicable("answers only with training frames")

    # CKA and kNN purity with permutation chance: the pairing of predicted and true rows permuted.
    perm = {"n_permutations": settings.n_permutations, "seed": settings.seed}
    metrics["cka"] = _permuted(centred_gram(predicted), ctx.true_gram, perm)
    metrics["cka_pooled"] = _permuted(centred_gram(pooled(predicted)), ctx.true_gram_pooled, perm)
    k = ctx.true_knn.shape[1]
    pred_knn = knn_sets(predicted, k)
    purity = purity_of_sets(pred_knn, ctx.true_knn)
    chance = permutation_chance(_purity_statistic(ctx.true_knn), pred_knn, np.arange(len(frames)), **perm)
    metrics["knn_purity"] = Metric(purity, chance=chance.value, p_value=chance.p_value(purity),
                                   note=f"k={k}; chance = 95th percentile of {chance.n_permutations} permuted pairings")
    return metrics, full


def score_cell(cell: CellResult, ctx: CellContext, settings: BenchmarkSettings) -> dict[str, Metric]:
    """Every metric of one method's predicted test patches (see :data:`COLUMNS`)."""
    metrics, _ = embedding_metrics(cell.predicted, ctx.embedding, settings,
                                   answers_unseen_frames=cell.answers_unseen_frames)
    sentences = ctx.narrator.narrate(torch.from_numpy(np.ascontiguousarray(cell.predicted)))
    metrics.update(sentence_metrics(sentences, ctx, settings))
    return metrics


def _permuted(gram_x: np.ndarray, gram_y: np.ndarray, perm: dict) -> Metric:
    """CKA from Gram matrices, with its chance level under permuted pairing."""
    value = cka_from_grams(gram_x, gram_y)

    def statistic(_x, order):
        return cka_from_grams(gram_x, gram_y[np.ix_(order, order)])

    chance = permutation_chance(statistic, np.arange(len(gram_x)), np.arange(len(gram_x)), **perm)
    return Metric(value, chance=chance.value, p_value=chance.p_value(value),
                  note=f"chance = 95th percentile of {chance.n_permutations} permuted pairings")


def _purity_statistic(true_knn: np.ndarray):
    def statistic(pred_knn, order):
        inverse = np.argsort(order)
        return purity_of_sets(pred_knn, inverse[true_knn[order]])
    return statistic


def sentence_metrics(sentences: list[str], ctx: CellContext, settings: BenchmarkSettings) -> dict[str, Metric]:
    """Held-out-caption headline, released-script compatible scores and the copy rate."""
    frames, blocks = ctx.frames, ctx.blocks
    scorer = ctx.inputs.scorer
    out: dict[str, Metric] = {}
    ci_args = {"n_resamples": settings.n_bootstrap, "level": settings.ci_level, "seed": settings.seed}

    held = sentence_scores.heldout_scores(sentences, frames, ctx.heldout_caption, scorer, blocks, seed=settings.seed)
    if held is None:
        out["sbert"] = Metric.not_applicable("no test frame has ≥ 2 reference captions to hold one out")
        out["sbert_shuffled"] = Metric.not_applicable("no held-out captions")
    else:
        ok = np.isfinite(held["matched"])
        ci = block_bootstrap_ci(held["matched"][ok], blocks[ok], **ci_args)
        floor = block_bootstrap_ci(held["shuffled"][ok], blocks[ok], **ci_args)
        test = paired_test(held["matched"][ok], held["shuffled"][ok], blocks[ok])
        out["sbert"] = Metric(ci.mean, ci, chance=floor.mean, p_value=test.p_value,
                              note=f"{int(ok.sum())} of {len(frames)} windows have a held-out caption")
        out["sbert_shuffled"] = Metric(floor.mean, floor)

    rel = sentence_scores.released_scores(sentences, frames, ctx.inputs.captions, scorer, ctx.inputs.released_pool,
                                          seed=settings.seed)
    ci = block_bootstrap_ci(rel["matched"], blocks, **ci_args)
    floor_ci = block_bootstrap_ci(rel["floor"], blocks, **ci_args)
    test = paired_test(rel["matched"], rel["floor"], blocks)
    out["released"] = Metric(ci.mean, ci, chance=floor_ci.mean, p_value=test.p_value)
    out["released_shuffled"] = Metric(float(np.mean(rel["shuffled"])),
                                      block_bootstrap_ci(rel["shuffled"], blocks, **ci_args))
    out["released_floor"] = Metric(floor_ci.mean, floor_ci)
    copied = sentence_scores.copy_flags(sentences, frames, ctx.inputs.captions)
    out["copy_rate"] = Metric(float(np.mean(copied)), block_bootstrap_ci(copied.astype(float), blocks, **ci_args))
    return out


# ---- Holm within each table ---------------------------------------------------------------------

#: The printed tables and the metric keys whose p-values form one family each.
TABLE_FAMILIES: dict[str, tuple[str, ...]] = {
    "A1": ("sbert", "released"),
    "A2": ("cka", "knn_purity", "r10", "median_rank"),
    "A3": ("r1", "within_1s", "r10_pooled", "within_1s_pooled"),
    "within_shot": ("within_shot_r1",),
    "zero_shot": ("zero_shot_r1", "zero_shot_r10", "zero_shot_within_1s"),
}


def apply_holm(table: BenchmarkTable) -> None:
    """Holm-adjust the p-values of each printed table as one family (in place).

    A1 spans every regime; A2, A3 and within-shot are the active split's; zero-shot spans the
    regimes that hold frames out.
    """
    for name, keys in TABLE_FAMILIES.items():
        rows = [r for r in table.rows if name in ("A1", "zero_shot") or r.regime == table.active]
        cells = [r.metrics[k] for r in rows for k in keys if k in r.metrics and r.metrics[k].p_value is not None]
        for metric, p in zip(cells, holm([m.p_value for m in cells]), strict=True):
            metric.p_holm = None if np.isnan(p) else float(p)
