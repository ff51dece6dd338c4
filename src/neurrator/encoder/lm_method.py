"""The LM decoder's vision head as a benchmark method (``evaluate.methods`` contract).

Registered as ``lm_decoder`` (pretrained backbone) and ``lm_decoder_random`` (the same
architecture randomly initialised) in :data:`~neurrator.evaluate.methods.BENCHMARK_METHODS`.
The budget maps onto the encoder's loop exactly as for the Neurrator row: ``max_steps``,
validation every ``validate_every`` steps on ``split.val`` (the mean per-patch cosine every
iterative method early-stops on), ``patience`` and ``batch_size``. The backbone, its training
mode, truncation and tokens per window come from the run's ``lm_decode`` config.
"""

from __future__ import annotations

import numpy as np

from neurrator.core.errors import InputError
from neurrator.evaluate.methods import BENCHMARK_METHODS, BenchmarkTask, Budget, FitReport


class LMDecoderMethod:
    """An :class:`~neurrator.encoder.lm_estimator.LMDecoder` with the basis (vision) head."""

    family, iterative, answers_unseen_frames, output = "lm_decoder", True, True, "patches"

    def __init__(self, params: dict, init: str = "pretrained"):
        self.params, self.init = dict(params), init
        backbone = "SmolLM2-135M-Instruct" if params.get("backbone", "smollm2") == "smollm2" else params["backbone"]
        layers = params.get("n_layers")
        self.name = (f"LM decoder ({backbone}, {'random init' if init == 'random' else params.get('mode', 'frozen')}"
                     f"{f', {layers} blocks' if layers else ''})")

    def fit(self, task: BenchmarkTask, budget: Budget, seed: int) -> FitReport:
        from neurrator.encoder.lm_estimator import LMDecoder

        jitter = int(self.params.get("jitter_bins", 2))
        if jitter > getattr(task.split, "jitter", jitter):
            raise InputError(None, f"split {task.split.name!r} guards against ±{task.split.jitter} bins of jitter but "
                                   f"the LM decoder trains with ±{jitter}")
        params = {**self.params, "init": self.init, "progress": False, "batch_size": budget.batch_size,
                  "max_steps": budget.max_steps, "val_every": budget.validate_every, "patience": budget.patience}
        self.model_ = LMDecoder(seed=seed, **params).fit(task.dataset, task.targets, task.split)
        m = self.model_.meta_.metrics
        history = [(int(h["step"]), float(h["val_metric"])) for h in self.model_.meta_.history]
        return FitReport(steps=int(m["steps"]), stop_reason=str(m["stopped"]), best_step=int(m["best_step"]),
                         best_val_score=float(m["val_metric"]), n_parameters=int(m["trainable_parameters"]),
                         history=history, notes={"model": self.model_.model_.config.describe,
                                                 "total_parameters": int(m["total_parameters"])})

    def predict(self, task: BenchmarkTask, pairs: np.ndarray) -> np.ndarray:
        return self.model_.predict(task.dataset, pairs).numpy()


@BENCHMARK_METHODS.register("lm_decoder")
def _pretrained(config) -> LMDecoderMethod:
    return LMDecoderMethod(config.lm_decode.decoder_params(config.cache_dir), "pretrained")


@BENCHMARK_METHODS.register("lm_decoder_random")
def _random(config) -> LMDecoderMethod:
    return LMDecoderMethod(config.lm_decode.decoder_params(config.cache_dir), "random")
