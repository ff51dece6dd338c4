"""The benchmark-method contract: methods side by side under one budget rule.

Every method the benchmark runs is a small **adapter** registered in :data:`BENCHMARK_METHODS`
(a :class:`~neurrator.core.registry.Registry`). To add one (e.g. a DINA or LM-decoder variant):

.. code-block:: python

    from neurrator.evaluate.methods import BENCHMARK_METHODS, Budget, BenchmarkTask, FitReport, fit_report

    @BENCHMARK_METHODS.register("my_method")
    def make_my_method(config):          # config: the RunConfig; read your own settings from it
        return MyMethod(...)

    class MyMethod:
        name = "My method"               # table label
        family = "my_method"             # key of the paper's row (evaluate.paper.ROW_OF_METHOD), or itself
        iterative = True                 # subject to the budget rule (steps cap, validation, patience)
        answers_unseen_frames = True     # False if it can only answer with training frames (kNN, classifier)
        output = "patches"               # or "coefficients" (rows of task.basis)

        def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport: ...
        def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray: ...

and add the defining module to ``BENCHMARK_METHODS``' ``builtin_modules`` (below) so the
registry imports it on first use. Then name it in ``evaluate.benchmark.methods``.

**The one budget rule** (:class:`Budget`, stored with every result):

- every method trains on the same training windows: all of ``task.split.train`` (never
  subsampled), z-scored with statistics of those windows only (``task.dataset``);
- iterative methods take at most ``budget.max_steps`` optimizer steps, validate every
  ``budget.validate_every`` steps on the same validation windows (``task.split.val``, evenly
  thinned to ``budget.max_val_windows``) with the same score (:meth:`BenchmarkTask.validation_score`,
  the mean per-patch cosine of the predicted patch tensors, higher is better), stop after
  ``budget.patience`` validations without improvement and keep the best validated weights;
- closed-form methods (ridge, PCA, kNN) fit once on all training windows;
- steps, not wall time, cap every fit, so a rerun with the same seed reproduces the numbers;
- :class:`FitReport` records where each method stopped and why, and its CPU seconds.

:func:`run_cell` is the **pure cell function**: one method on one task (regime × seed × unit
subset × session) → a :class:`CellResult`. It writes nothing, so the benchmark stage runs cells
in-process and a sweep can fan them out (e.g. as Ray tasks) with the same result.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from neurrator.core.errors import InputError
from neurrator.core.linalg import PCABasis, fit_pca_basis, mean_patch_cosine
from neurrator.core.registry import Registry
from neurrator.core.sampling import evenly_spaced
from neurrator.evaluate.baselines import (
    KNNPatches,
    MLPPatches,
    RidgePatches,
    cebra_estimator,
    pca_embedding,
    window_features,
)
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets

#: Method name → factory ``f(config: RunConfig) -> BenchmarkMethod``. Other layers register their
#: methods in their own modules; list those modules here so lookups import them.
BENCHMARK_METHODS: Registry = Registry("benchmark method", builtin_modules=("neurrator.encoder.lm_method",
                                                                                 "neurrator.encoder.bench_methods"))


# ---- the budget, the task, the fit report ----------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The one budget rule every method of a benchmark run shares.

    Attributes
    ----------
    max_steps : cap of optimizer steps of every iterative method (a multiple of ``validate_every``).
    validate_every : steps between validations (early-stopping checks).
    patience : validations without improvement before an iterative method stops.
    batch_size : training windows per optimizer step (CEBRA keeps its own contrastive batch,
        stated in its notes).
    max_val_windows : validation windows, evenly spaced over the split's (0 = all).
    quick : the reduced demo budget; every table built from it says "quick".
    """

    max_steps: int = 3000
    validate_every: int = 100
    patience: int = 5
    batch_size: int = 64
    max_val_windows: int = 1024
    quick: bool = False

    def __post_init__(self):
        if min(self.max_steps, self.validate_every, self.patience, self.batch_size) < 1:
            raise ValueError(f"invalid budget {self}")
        if self.max_steps % self.validate_every:
            raise ValueError(f"budget max_steps ({self.max_steps}) must be a multiple of validate_every "
                             f"({self.validate_every}), so every method validates at the same steps")

    @property
    def label(self) -> str:
        mode = "quick" if self.quick else "full"
        return (f"{mode}: ≤ {self.max_steps} optimizer steps of {self.batch_size} windows, validation every "
                f"{self.validate_every} steps on ≤ {self.max_val_windows or 'all'} validation windows, "
                f"patience {self.patience}")

    def to_dict(self) -> dict:
        return {**asdict(self), "label": self.label}


@dataclass
class BenchmarkTask:
    """Everything a method may use to fit and predict on one split (explicit inputs only).

    Attributes
    ----------
    dataset : responses z-scored with the training windows of ``split`` only.
    targets : (n_frames, n_patches, dim) patch targets of every stimulus frame.
    split : train = every training window; val = the budget's validation windows; test = the
        split's test windows (methods never read them while fitting).
    basis : PCA basis of the training frames' targets (coefficient space of the baselines).
    n_time_chunks : chunks per window of the baselines' spike features.
    checkpoint : folder of the run's trained encoder, if any (for the checkpoint row).
    """

    dataset: NeuralDataset
    targets: PatchTargets
    split: Split
    basis: PCABasis
    n_time_chunks: int = 2
    checkpoint: Path | None = None
    _features: dict = field(default_factory=dict, repr=False)
    _val_true: np.ndarray | None = field(default=None, repr=False)
    _fits: dict = field(default_factory=dict, repr=False)

    def features(self, pairs: np.ndarray) -> np.ndarray:
        """Spike features (n, n_time_chunks × n_units) of ``pairs``; cached per pair set."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        key = (len(pairs), hash(pairs.tobytes()))
        if key not in self._features:
            self._features[key] = window_features(self.dataset, pairs, n_chunks=self.n_time_chunks)
        return self._features[key]

    def coefficients(self, frames: np.ndarray) -> np.ndarray:
        """Basis coefficients (n, rank) of the targets of ``frames`` (n,)."""
        unique, inverse = np.unique(np.asarray(frames, dtype=np.int64), return_inverse=True)
        return self.basis.transform(self.targets.patches, unique)[inverse]

    def as_patches(self, predicted: np.ndarray, output: str) -> np.ndarray:
        """A method's output → (n, n_patches, dim) float32 patch tensors."""
        if output == "coefficients":
            return self.basis.inverse_transform(predicted)
        return np.asarray(predicted, dtype=np.float32)

    def validation_score(self, predict: Callable[[np.ndarray], np.ndarray], output: str, *, chunk: int = 256) -> float:
        """The score every iterative method early-stops on: mean per-patch cosine between the
        predicted and the true patch tensors of the validation windows (higher is better)."""
        pairs = self.split.val
        total = 0.0
        for lo in range(0, len(pairs), chunk):
            part = pairs[lo : lo + chunk]
            pred = self.as_patches(predict(part), output)
            true = np.asarray(self.targets.patches[part[:, 1]], dtype=np.float32)
            total += float(mean_patch_cosine(pred, true).sum())
        return total / max(len(pairs), 1)


def make_task(dataset: NeuralDataset, targets: PatchTargets, split: Split, budget: Budget, *,
              basis_components: int = 128, n_time_chunks: int = 2, checkpoint: Path | None = None) -> BenchmarkTask:
    """The :class:`BenchmarkTask` of ``split`` under ``budget``.

    ``dataset`` must already be z-scored with ``split``'s training windows
    (:func:`neurrator.preprocess.dataset.rezscore`). Validation windows are thinned evenly to
    ``budget.max_val_windows``; training windows are all kept.
    """
    val = split.val[evenly_spaced(len(split.val), budget.max_val_windows)]
    if not len(split.train) or not len(val):
        raise InputError(None, f"split {split.name!r} has no training or no validation windows")
    task_split = replace(split, val=val)
    basis = fit_pca_basis(targets.patches, split.train_frames, basis_components)
    return BenchmarkTask(dataset, targets, task_split, basis, n_time_chunks, checkpoint)


@dataclass
class FitReport:
    """How one method's fit went.

    Attributes
    ----------
    steps : optimizer steps taken (0 for closed-form methods).
    stop_reason : ``"early_stopping"``, ``"max_steps"``, ``"closed_form"`` or ``"checkpoint"``.
    best_step : step of the kept weights (validation best).
    best_val_score : validation score of the kept weights (``nan`` if never validated).
    cpu_seconds, wall_seconds : process CPU time and wall time of fit (all threads).
    n_parameters : trainable (or stored) parameters.
    history : ``[(step, validation score), ...]``.
    notes : method-specific settings worth printing (hidden size, CEBRA batch, ...).
    """

    steps: int
    stop_reason: str
    best_step: int = 0
    best_val_score: float = math.nan
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    n_parameters: int = 0
    history: list[tuple[int, float]] = field(default_factory=list)
    notes: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FitReport:
        d = dict(d)
        d["history"] = [tuple(h) for h in d.get("history", [])]
        return cls(**d)


@runtime_checkable
class BenchmarkMethod(Protocol):
    """What the benchmark needs of a method (see the module docstring)."""

    name: str
    family: str
    iterative: bool
    answers_unseen_frames: bool
    output: str

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport: ...

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray: ...


def early_stopping_loop(
    train_steps: Callable[[int], None],
    validate: Callable[[], float],
    snapshot: Callable[[], Any],
    restore: Callable[[Any], None],
    budget: Budget,
) -> FitReport:
    """The budget rule for a method that trains in blocks of steps (MLP, CEBRA).

    Takes ``validate_every`` steps, validates, keeps the best snapshot, stops after
    ``patience`` validations without improvement or at ``max_steps``, restores the best.
    CPU and wall seconds are filled in by :func:`run_cell`.
    """
    steps, best, best_step, bad, best_state, history = 0, -math.inf, 0, 0, None, []
    stop = "max_steps"
    while steps < budget.max_steps:
        n = min(budget.validate_every, budget.max_steps - steps)
        train_steps(n)
        steps += n
        score = float(validate())
        history.append((steps, score))
        if score > best:
            best, best_step, bad, best_state = score, steps, 0, snapshot()
        else:
            bad += 1
            if bad >= budget.patience:
                stop = "early_stopping"
                break
    if best_state is not None:
        restore(best_state)
    return FitReport(steps=steps, stop_reason=stop, best_step=best_step, best_val_score=best, history=history)


# ---- the cell ----------------------------------------------------------------------------------


@dataclass
class CellResult:
    """One method on one task: its fit and its predicted test patch tensors.

    Attributes
    ----------
    method, family : the method's table label and paper-row key.
    iterative, answers_unseen_frames : the method's declared properties.
    split : the split's name.
    fit : the :class:`FitReport`.
    test_pairs : (n, 2) ``(repeat, frame)`` test windows predicted.
    predicted : (n, n_patches, dim) float32 predicted patch tensors of ``test_pairs``.
    seed : the seed of the fit.
    """

    method: str
    family: str
    iterative: bool
    answers_unseen_frames: bool
    split: str
    fit: FitReport
    test_pairs: np.ndarray
    predicted: np.ndarray
    seed: int


def run_cell(method: BenchmarkMethod, task: BenchmarkTask, budget: Budget, *, seed: int,
             test_pairs: np.ndarray) -> CellResult:
    """Fit ``method`` on ``task`` under ``budget`` and predict ``test_pairs``. Writes nothing."""
    from neurrator.core.seed import seed_everything

    seed_everything(seed)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = method.fit(task, budget, seed)
    report.cpu_seconds = round(time.process_time() - cpu0, 2)
    report.wall_seconds = round(time.perf_counter() - wall0, 2)
    test_pairs = np.asarray(test_pairs, dtype=np.int64).reshape(-1, 2)
    predicted = task.as_patches(method.predict(task, test_pairs), method.output)
    return CellResult(method.name, method.family, method.iterative, method.answers_unseen_frames, task.split.name,
                      report, test_pairs, predicted, seed)


# ---- built-in adapters ---------------------------------------------------------------------------


class NeurratorMethod:
    """The Neurrator encoder through its public estimator, trained under the budget rule.

    The budget maps onto the encoder's own loop (``encoder.train``): ``max_steps``,
    validation every ``val_every = validate_every`` steps on ``split.val`` (``validation =
    "split"``), the budget's ``patience`` and ``batch_size``, no wall-time cap; epochs never bind
    (``max_epochs = max_steps``). Everything else (architecture, loss, schedule, augmentation)
    comes from ``encoder_params`` (the run's ``encoder`` config, plus a variant's overrides).

    Variants (``neurrator.encoder.bench_methods``) pass their own ``name``/``family`` and, for
    temporal ensembling, ``shifts``: predictions are the mean over the frame-centred window
    shifted by each (bins). ``fit`` refuses shifts under which a test window would share a
    time bin with a training window that the unshifted windows do not share, and a variant's
    ``best_val_score`` is the benchmark's validation score of its own predictions (shifts
    included) on ``split.val``, so variants are compared by validation like with like.
    """

    name, family, iterative, answers_unseen_frames, output = "Neurrator (encoder)", "neurrator", True, True, "patches"

    def __init__(self, encoder_params: dict, *, name: str | None = None, family: str | None = None,
                 shifts: tuple[int, ...] = (0,)):
        self.encoder_params = dict(encoder_params)
        self.shifts = tuple(int(s) for s in shifts) or (0,)
        if name is not None:
            self.name = name
        if family is not None:
            self.family = family

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        from neurrator.encoder import Neurrator

        jitter = int(self.encoder_params.get("jitter_bins", 2))
        if jitter > task.split.jitter:
            raise InputError(None, f"split {task.split.name!r} guards against ±{task.split.jitter} bins of jitter but the "
                                   f"encoder trains with ±{jitter}; re-ingest with the encoder's jitter")
        if self.shifts != (0,):
            _check_test_shifts(task.split, self.encoder_params, self.shifts)
        params = {**self.encoder_params, "progress": False, "batch_size": budget.batch_size,
                  "max_steps": budget.max_steps, "val_every": budget.validate_every, "patience": budget.patience,
                  "max_epochs": budget.max_steps, "validation": "split", "max_minutes": 0.0}
        # Rows that differ only in how they predict (shifts) train the same weights: fit once per task.
        # (The inputs are part of the key and kept alive with the model, so their ids stay unique.)
        inputs = (task.dataset, task.targets, task.split)
        key = ("neurrator", json.dumps(params, sort_keys=True, default=str), seed, budget, *map(id, inputs))
        shared = key in task._fits
        if not shared:
            task._fits[key] = (Neurrator(seed=seed, **params).fit(*inputs), inputs)
        self.model_ = task._fits[key][0]
        m = self.model_.meta_.metrics
        history = [(int(h["step"]), float(h["val_metric"])) for h in self.model_.history_]
        notes = {"preset": self.model_.preset, "head": self.model_.config.resolved().head}
        if shared:
            notes["weights"] = ("shared with an earlier row of this regime trained with the same parameters, seed "
                                "and budget; CPU seconds are this row's validation only")
        best = float(m["val_cosine"])
        if self.shifts != (0,):  # the kept weights' validation score with the predictions scored at test
            notes["val_cosine_unshifted"], notes["shifts"] = best, list(self.shifts)
            best = task.validation_score(lambda p: self.predict(task, p), self.output)
        return FitReport(steps=int(m["steps"]), stop_reason=str(m["stopped"]), best_step=int(m["best_step"]),
                         best_val_score=best, n_parameters=int(m["n_parameters"]), history=history, notes=notes)

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.model_.predict(task.dataset, pairs, shifts=self.shifts).numpy()


def _check_test_shifts(split: Split, encoder_params: dict, shifts: tuple[int, ...]) -> None:
    """:class:`InputError` if test windows shifted by ``shifts`` (bins) share a time bin with a
    training or validation window (at the encoder's full training shift range) more often than
    the unshifted test windows do (bin by bin, :func:`neurrator.preprocess.splits.measure_overlap`)."""
    from neurrator.encoder.config import EncoderConfig
    from neurrator.preprocess.splits import measure_overlap

    known = set(EncoderConfig.model_fields)
    train_shift = EncoderConfig(**{k: v for k, v in encoder_params.items() if k in known}).resolved().max_shift_bins(
        split.bins_per_frame)
    train_val = np.concatenate([split.train, split.val])
    geometry = {"window": split.window, "bins_per_frame": split.bins_per_frame, "jitter": train_shift}
    base = measure_overlap(train_val, split.test, **geometry, test_jitter=0)
    shifted = measure_overlap(train_val, split.test, **geometry, test_jitter=(min(shifts), max(shifts)))
    if shifted > base:
        raise InputError(None, f"split {split.name!r}: test windows shifted by {list(shifts)} bins share time bins with "
                               f"training windows ({shifted:.1%} of test windows against {base:.1%} unshifted); its "
                               f"leakage guard does not cover these shifts")


class NeurratorCheckpointMethod:
    """The train stage's checkpoint as is: an extra row, labelled, **not** under the budget rule.

    Applicable only to the split the checkpoint was trained on (``fit`` raises otherwise).
    """

    name = "Neurrator (train-stage checkpoint, own budget)"
    family, iterative, answers_unseen_frames, output = "neurrator", False, True, "patches"

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        from neurrator.encoder import Neurrator

        if task.checkpoint is None or not (task.checkpoint / "checkpoint.json").is_file():
            raise InputError(task.checkpoint, "no trained encoder checkpoint")
        model = Neurrator.load(task.checkpoint, expect_units=task.dataset.unit_ids, expect_space=task.targets.info)
        if model.meta_.split.get("name") != task.split.name:
            raise InputError(task.checkpoint, f"checkpoint was trained on split {model.meta_.split.get('name')!r}, "
                                              f"not {task.split.name!r}")
        self.model_ = model
        m = model.meta_.metrics
        return FitReport(steps=0, stop_reason="checkpoint", best_val_score=float(m.get("val_cosine", math.nan)),
                         n_parameters=int(m.get("n_parameters", 0)),
                         notes={"epochs": m.get("epochs"), "stopped": m.get("stopped"), "seconds": m.get("seconds")})

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.model_.predict(task.dataset, pairs).numpy()


class RidgeMethod:
    """Ridge from spike features to target coefficients; closed form on all training windows."""

    name, family, iterative, answers_unseen_frames, output = "Ridge", "ridge", False, True, "coefficients"

    def __init__(self, alpha: float = 100.0):
        self.alpha = alpha

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        train = task.split.train
        self.model_ = RidgePatches(self.alpha).fit(task.features(train), task.coefficients(train[:, 1]))
        score = task.validation_score(lambda p: self.predict(task, p), self.output)
        return FitReport(steps=0, stop_reason="closed_form", best_val_score=score, n_parameters=self.model_.n_parameters,
                         notes={"alpha": self.alpha})

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.model_.predict(task.features(pairs))


class MLPMethod:
    """One-hidden-layer MLP to target coefficients, trained and early-stopped under the budget rule."""

    name, family, iterative, answers_unseen_frames, output = "MLP-Patches", "mlp", True, True, "coefficients"

    def __init__(self, hidden: int = 256, lr: float = 1e-3):
        self.hidden, self.lr = hidden, lr

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        train = task.split.train
        self.model_ = MLPPatches(self.hidden, lr=self.lr, seed=seed).start(task.features(train),
                                                                            task.coefficients(train[:, 1]))
        report = early_stopping_loop(
            lambda n: self.model_.train_steps(n, budget.batch_size),
            lambda: task.validation_score(lambda p: self.model_.predict(task.features(p)), self.output),
            self.model_.state, self.model_.load_state, budget)
        report.n_parameters = self.model_.n_parameters
        report.notes = {"hidden": self.hidden, "lr": self.lr}
        return report

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.model_.predict(task.features(pairs))


class PCAKNNMethod:
    """PCA of standardised spike features, cosine kNN over training windows (closed form).

    Predicts the mean target of the k nearest training windows: training frames only.
    """

    name, family, iterative, answers_unseen_frames, output = "PCA + kNN", "pca_knn", False, False, "coefficients"

    def __init__(self, n_components: int = 64, k: int = 10):
        self.n_components, self.k = n_components, k

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        train = task.split.train
        x = task.features(train)
        self.pca_ = pca_embedding(self.n_components, *x.shape, seed=seed)
        self.knn_ = KNNPatches(self.k).fit(self.pca_.fit_transform(x), task.coefficients(train[:, 1]))
        score = task.validation_score(lambda p: self.predict(task, p), self.output)
        pca = self.pca_[-1]
        return FitReport(steps=0, stop_reason="closed_form", best_val_score=score,
                         n_parameters=int(pca.components_.size + pca.mean_.size),
                         notes={"components": int(pca.n_components_), "k": self.k})

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.knn_.predict(self.pca_.transform(task.features(pairs)))


class CEBRAKNNMethod:
    """CEBRA (the real ``cebra`` package) on PCA-reduced spike features, then cosine kNN.

    Trained with ``partial_fit`` in blocks of ``validate_every`` steps under the budget rule
    (CEBRA's sklearn API has no validation set; its ``callback`` cannot stop a fit), keeping
    the weights with the best validation score. Predicts the mean target of the k nearest
    training windows in the CEBRA embedding: training frames only.
    """

    family_prefix = "cebra"
    iterative, answers_unseen_frames, output = True, False, "coefficients"

    def __init__(self, output_dimension: int = 512, *, mode: str = "targets", batch_size: int = 512, hidden: int = 128,
                 input_components: int = 128, label_dims: int = 16, k: int = 10):
        self.output_dimension, self.mode, self.batch_size, self.hidden = output_dimension, mode, batch_size, hidden
        self.input_components, self.label_dims, self.k = input_components, label_dims, k
        self.name = f"CEBRA-{output_dimension} + kNN"
        self.family = f"cebra-{output_dimension}"

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        import torch

        train = task.split.train
        x_raw = task.features(train)
        self.pca_ = pca_embedding(self.input_components, *x_raw.shape, seed=seed)
        x = self.pca_.fit_transform(x_raw).astype(np.float32)
        coefs = task.coefficients(train[:, 1])
        torch.manual_seed(seed)
        self.cebra_ = cebra_estimator(self.output_dimension, steps_per_call=budget.validate_every,
                                      batch_size=min(self.batch_size, len(x)), hidden=self.hidden, mode=self.mode)
        if self.mode == "targets":
            labels = coefs[:, : self.label_dims]
            labels = ((labels - labels.mean(0)) / (labels.std(0) + 1e-6)).astype(np.float32)
            fit_args: tuple = (x, labels)
        elif self.mode == "frame_labels":
            fit_args = (x, train[:, 1].astype(np.int64))
        else:
            fit_args = (x,)

        def train_steps(n: int) -> None:  # n == validate_every: the budget's max_steps is a multiple of it
            self.cebra_.partial_fit(*fit_args)

        def validate() -> float:
            self.knn_ = KNNPatches(self.k).fit(self.cebra_.transform(x), coefs)
            return task.validation_score(lambda p: self.predict(task, p), self.output)

        def snapshot():
            return {k: v.detach().clone() for k, v in self.cebra_.model_.state_dict().items()}

        def restore(state) -> None:
            self.cebra_.model_.load_state_dict(state)

        report = early_stopping_loop(train_steps, validate, snapshot, restore, budget)
        self.knn_ = KNNPatches(self.k).fit(self.cebra_.transform(x), coefs)
        report.n_parameters = int(sum(p.numel() for p in self.cebra_.model_.parameters()) + self.pca_[-1].components_.size)
        report.notes = {"mode": self.mode, "contrastive_batch": min(self.batch_size, len(x)), "hidden": self.hidden,
                        "input_components": int(self.pca_[-1].n_components_), "k": self.k}
        return report

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        x = self.pca_.transform(task.features(pairs)).astype(np.float32)
        return self.knn_.predict(self.cebra_.transform(x))


# ---- registrations ----------------------------------------------------------------------------


def _bench(config):
    return config.evaluate.benchmark


@BENCHMARK_METHODS.register("neurrator")
def _make_neurrator(config) -> NeurratorMethod:
    return NeurratorMethod(config.encoder.model_dump(exclude_none=True))


@BENCHMARK_METHODS.register("neurrator_checkpoint")
def _make_checkpoint(config) -> NeurratorCheckpointMethod:
    return NeurratorCheckpointMethod()


@BENCHMARK_METHODS.register("ridge")
def _make_ridge(config) -> RidgeMethod:
    return RidgeMethod(_bench(config).ridge_alpha)


@BENCHMARK_METHODS.register("mlp")
def _make_mlp(config) -> MLPMethod:
    return MLPMethod(_bench(config).mlp_hidden)


@BENCHMARK_METHODS.register("pca_knn")
def _make_pca_knn(config) -> PCAKNNMethod:
    b = _bench(config)
    return PCAKNNMethod(b.pca_components, b.knn_k)


def _cebra_factory(dim: int):
    def make(config) -> CEBRAKNNMethod:
        b = _bench(config)
        return CEBRAKNNMethod(dim, mode=b.cebra_mode, batch_size=b.cebra_batch_size, hidden=b.cebra_hidden,
                              input_components=b.cebra_input_components, k=b.knn_k)
    return make


for _dim in (128, 256, 512):
    BENCHMARK_METHODS.register(f"cebra-{_dim}")(_cebra_factory(_dim))
