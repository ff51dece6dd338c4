"""The encoder's variants and DINA as benchmark methods (``evaluate.methods`` contract).

Registered in :data:`~neurrator.evaluate.methods.BENCHMARK_METHODS` (name them in
``evaluate.benchmark.methods``):

- ``neurrator_<variant>`` for each entry of :data:`VARIANTS`: the budgeted Neurrator row
  (:class:`~neurrator.evaluate.methods.NeurratorMethod`, the same adapter) with the run's
  ``encoder`` config plus the variant's overrides, and for ``neurrator_ensemble`` the mean
  prediction over windows shifted by −1 and 0 bins (temporal ensembling);
- ``dina``: contrastive dual towers (:class:`~neurrator.encoder.estimator.NeurratorDINA`).

Every one runs under the benchmark's one budget rule exactly as the Neurrator row does (the
encoder's loop with ``max_steps``, validation every ``validate_every`` steps on ``split.val``,
``patience``, ``batch_size``, no wall-time cap).

**DINA through the one readout.** DINA identifies a window by cosine in its joint space between
the neural tower's embedding and the image tower's embedding of each candidate frame. The
benchmark's candidates are every stimulus frame (zero-shot: the held-out frames among them), so
the adapter's output is DINA's *soft retrieval over every stimulus frame*: the
``softmax(cos / τ)``-weighted mean (learned τ) of those frames' vision-space targets. The image
tower reads only the frames' targets, never responses to test frames; the patch tensor it
returns is scored by the benchmark's one readout like every other method's, so DINA answers
unseen frames (``answers_unseen_frames = True``) without a readout of its own. Its early
stopping uses the estimator's validation (soft retrieval over the training frames); its
``best_val_score`` is the benchmark's validation score of the adapter's own predictions.

**Choosing a variant.** :func:`best_variant` picks, per regime, the budgeted Neurrator row
(family ``neurrator`` or ``neurrator-*``) with the highest validation score — never a test score.
"""

from __future__ import annotations

import numpy as np

from neurrator.core.errors import InputError
from neurrator.evaluate.methods import BENCHMARK_METHODS, BenchmarkTask, Budget, FitReport, NeurratorMethod

#: Variant key → (table label, encoder overrides, prediction shifts in bins). The overrides are
#: applied on top of the run's ``encoder`` config (the demo preset unless the run says otherwise).
VARIANTS: dict[str, tuple[str, dict, tuple[int, ...]]] = {
    "ensemble": ("Neurrator (temporal ensemble −1, 0 bins)", {}, (-1, 0)),
    "rf": ("Neurrator (+ rf-aware local readout, 32 units/patch)", {"rf_units": 32}, (0,)),
    "contrastive": ("Neurrator (+ DINA contrastive aux, weight 0.5)", {"contrastive_weight": 0.5}, (0,)),
    "mixup": ("Neurrator (mixup 0.4)", {"mixup": 0.4}, (0,)),
    "whitened": ("Neurrator (whitened-coefficient loss)", {"loss_space": "whitened"}, (0,)),
    "regularised": ("Neurrator (dropout 0.4, wd 0.05, unit dropout 0.3)",
                    {"dropout": 0.4, "weight_decay": 0.05, "unit_dropout": 0.3}, (0,)),
}


def variant_method(config, key: str) -> NeurratorMethod:
    """The budgeted Neurrator row of variant ``key`` under ``config`` (a RunConfig)."""
    label, overrides, shifts = VARIANTS[key]
    params = {**config.encoder.model_dump(exclude_none=True), **overrides}
    return NeurratorMethod(params, name=label, family=f"neurrator-{key}", shifts=shifts)


def _register_variant(key: str) -> None:
    BENCHMARK_METHODS.register(f"neurrator_{key}")(lambda config: variant_method(config, key))


for _key in VARIANTS:
    _register_variant(_key)


class DINAMethod:
    """:class:`~neurrator.encoder.estimator.NeurratorDINA` under the budget rule; output = soft
    retrieval over every stimulus frame (see the module docstring)."""

    name = "DINA (contrastive dual towers)"
    family, iterative, answers_unseen_frames, output = "dina", True, True, "patches"

    def __init__(self, encoder_params: dict):
        self.encoder_params = dict(encoder_params)

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        from neurrator.encoder import NeurratorDINA

        jitter = int(self.encoder_params.get("jitter_bins", 2))
        if jitter > task.split.jitter:
            raise InputError(None, f"split {task.split.name!r} guards against ±{task.split.jitter} bins of jitter but "
                                   f"DINA trains with ±{jitter}")
        params = {**self.encoder_params, "progress": False, "batch_size": budget.batch_size,
                  "max_steps": budget.max_steps, "val_every": budget.validate_every, "patience": budget.patience,
                  "max_epochs": budget.max_steps, "validation": "split", "max_minutes": 0.0, "mixup": 0.0,
                  "contrastive_weight": 0.0}
        self.model_ = NeurratorDINA(seed=seed, **params).fit(task.dataset, task.targets, task.split)
        self.candidates_, self.bank_ = np.arange(task.targets.n_frames), None
        m = self.model_.meta_.metrics
        history = [(int(h["step"]), float(h["val_metric"])) for h in self.model_.history_]
        best = task.validation_score(lambda p: self.predict(task, p), self.output)
        return FitReport(steps=int(m["steps"]), stop_reason=str(m["stopped"]), best_step=int(m["best_step"]),
                         best_val_score=best, n_parameters=int(m["n_parameters"]), history=history,
                         notes={"temperature": round(float(m["temperature"]), 4),
                                "joint_dim": int(self.model_.config.resolved().contrastive_dim),
                                "val_soft_retrieval_training_frames": float(m["val_cosine"]),
                                "output": "soft retrieval over every stimulus frame (joint space, learned τ)"})

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        import torch

        from neurrator.encoder.train import soft_retrieval_bank, soft_retrieve

        if getattr(self, "bank_", None) is None:  # every candidate frame through the image tower, once
            self.model_.model_.eval()
            self.bank_ = soft_retrieval_bank(self.model_.model_, task.targets, self.candidates_)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        with torch.no_grad():
            return soft_retrieve(self.model_.model_, self.model_.embed(task.dataset, pairs), self.bank_).numpy()


@BENCHMARK_METHODS.register("dina")
def _make_dina(config) -> DINAMethod:
    return DINAMethod(config.encoder.model_dump(exclude_none=True))


def best_variant(rows, regime: str):
    """The budgeted Neurrator row (family ``neurrator`` or ``neurrator-*``, iterative) of
    ``regime`` with the highest validation score (``fit.best_val_score``), or ``None``.

    ``rows``: :class:`~neurrator.evaluate.results.MethodRow` objects (e.g. ``BenchmarkTable.rows``).
    Test scores play no part in the choice.
    """
    candidates = [r for r in rows if r.regime == regime and r.iterative
                  and (r.family == "neurrator" or r.family.startswith("neurrator-"))
                  and np.isfinite(r.fit.best_val_score)]
    return max(candidates, key=lambda r: r.fit.best_val_score, default=None)
