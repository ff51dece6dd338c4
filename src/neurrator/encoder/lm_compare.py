"""Pretrained language-model backbones against their controls, on one behaviour (NLP4Neuro's
comparison, run rather than assumed: its released Wilcoxon file shows p = 1.0 for pretrained
against untrained).

Conditions (each fitted with every seed; the same windows, split and training budget):

=============  =================================================================================
pretrained     the LM decoder with the pretrained backbone (frozen / LoRA / full)
random         the same architecture with random weights (``from_config``), same mode
scratch        a plain transformer trained from scratch, width chosen so that the whole decoder
               has as many trainable parameters as the pretrained one
ridge          ridge regression on the benchmark's window features (closed form: identical
               for every seed; alpha chosen on the validation windows)
shuffled       the pretrained decoder trained on the behaviour circularly shifted in time
               (autocorrelation kept, relation to the spikes destroyed): the chance level
=============  =================================================================================

Reported per condition: test R² and RMSE (mean ± Student-t interval across seeds, and a block
bootstrap interval of the seed-averaged squared errors; blocks are ``(repeat, 1 s of frames)``
because behaviour changes with time, not with the frame), paired Wilcoxon tests of pretrained
against each other condition across seeds (paired by seed) and on block means of the
squared-error difference, Holm-adjusted within the table.

The R² interval treats the test variance of the behaviour as fixed: R² = 1 − MSE / Var(y).
With n seeds the smallest two-sided Wilcoxon p-value is 2 / 2ⁿ (0.0625 at 5 seeds); every
table states it.

:func:`compare_behaviour` is a pure function of explicit inputs: it writes nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from neurrator.core.errors import InputError
from neurrator.encoder.lm_decoder import LMDecoderConfig, load_backbone, match_scratch_width
from neurrator.encoder.lm_estimator import LMDecoder
from neurrator.evaluate import stats
from neurrator.preprocess.behaviour import BehaviourTargets
from neurrator.preprocess.types import NeuralDataset, Split

CONDITIONS = ("pretrained", "random", "scratch", "ridge", "shuffled")
RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


@dataclass
class DecodeRun:
    """One condition × seed: test scores and predictions.

    ``predictions`` : (n_test,) in the behaviour's unit, for :attr:`Comparison.test_pairs`.
    """

    condition: str
    seed: int
    r2: float
    rmse: float
    val_metric: float
    trainable_parameters: int
    total_parameters: int
    seconds: float
    steps: int
    stopped: str
    predictions: np.ndarray = field(repr=False)
    description: str = ""


@dataclass
class Comparison:
    """Result of :func:`compare_behaviour`.

    Attributes
    ----------
    behaviour, unit, session_id : what was decoded.
    test_pairs : (n, 2) the test windows scored; ``truth`` (n,) their behaviour; ``blocks`` (n,).
    runs : one :class:`DecodeRun` per condition × seed.
    settings : the decoder parameters, seeds, budget and window counts used.
    """

    behaviour: str
    unit: str
    session_id: str
    test_pairs: np.ndarray
    truth: np.ndarray
    blocks: np.ndarray
    runs: list[DecodeRun]
    settings: dict
    #: The estimator ``compare_behaviour(keep=(condition, seed))`` asked to keep (not saved).
    kept: LMDecoder | None = field(default=None, repr=False)

    def per_seed(self) -> pd.DataFrame:
        """One row per condition × seed (scores, parameters, seconds, stop reason)."""
        cols = ["condition", "seed", "r2", "rmse", "val_metric", "trainable_parameters", "total_parameters",
                "seconds", "steps", "stopped", "description"]
        return pd.DataFrame([{c: getattr(r, c) for c in cols} for r in self.runs], columns=cols)

    def _errors(self, condition: str) -> np.ndarray:
        """(n,) squared error of the seed-averaged squared errors of ``condition``."""
        runs = [r for r in self.runs if r.condition == condition]
        return np.mean([(r.predictions - self.truth) ** 2 for r in runs], axis=0)

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Per condition: R² and RMSE, mean over seeds with a Student-t interval across seeds and
        a block-bootstrap interval over test windows."""
        variance = max(float(np.var(self.truth)), 1e-30)
        rows = []
        for condition in dict.fromkeys(r.condition for r in self.runs):
            runs = [r for r in self.runs if r.condition == condition]
            r2 = stats.t_interval([r.r2 for r in runs], level=level)
            mse = stats.block_bootstrap_ci(self._errors(condition), self.blocks, level=level, seed=0)
            rows.append({
                "condition": condition, "description": runs[0].description, "n_seeds": len(runs),
                "r2_mean": r2.mean, "r2_seed_low": r2.low, "r2_seed_high": r2.high,
                "r2_block_low": 1 - mse.high / variance, "r2_block_high": 1 - mse.low / variance,
                "rmse_mean": float(np.mean([r.rmse for r in runs])),
                "rmse_block_low": float(np.sqrt(mse.low)), "rmse_block_high": float(np.sqrt(mse.high)),
                "n_blocks": mse.n_blocks, "trainable_parameters": runs[0].trainable_parameters,
                "seconds_per_fit": float(np.mean([r.seconds for r in runs])),
            })
        return pd.DataFrame(rows)

    def tests(self, reference: str = "pretrained") -> pd.DataFrame:
        """``reference`` against every other condition: Wilcoxon across seeds (paired by seed)
        on R², and on block means of the squared-error difference; Holm within each column."""
        ref = {r.seed: r for r in self.runs if r.condition == reference}
        if not ref:
            return pd.DataFrame()
        rows = []
        for condition in dict.fromkeys(r.condition for r in self.runs):
            if condition == reference:
                continue
            other = {r.seed: r for r in self.runs if r.condition == condition}
            seeds = sorted(set(ref) & set(other))
            by_seed = stats.paired_test([ref[s].r2 for s in seeds], [other[s].r2 for s in seeds])
            by_block = stats.paired_test(self._errors(condition), self._errors(reference), self.blocks)
            rows.append({
                "reference": reference, "condition": condition, "n_seeds": len(seeds),
                "r2_difference": by_seed.mean_difference, "seed_p": by_seed.p_value,
                "seed_rank_biserial": by_seed.rank_biserial,
                "min_possible_seed_p": min(1.0, 2.0 / 2 ** len(seeds)) if seeds else float("nan"),
                "mse_difference": by_block.mean_difference, "block_p": by_block.p_value,
                "block_rank_biserial": by_block.rank_biserial, "n_blocks": by_block.n_blocks,
            })
        table = pd.DataFrame(rows)
        if len(table):
            table["seed_p_holm"] = stats.holm(table["seed_p"].to_numpy())
            table["block_p_holm"] = stats.holm(table["block_p"].to_numpy())
        return table

    def trace(self, condition: str = "pretrained") -> pd.DataFrame:
        """Test windows in time order: truth, the first seed's prediction and the seed mean of
        ``condition`` (the first condition run if it was not)."""
        runs = [r for r in self.runs if r.condition == condition] or [r for r in self.runs if r.condition == self.runs[0].condition]
        return pd.DataFrame({
            "repeat": self.test_pairs[:, 0], "frame": self.test_pairs[:, 1], "truth": self.truth,
            "predicted": runs[0].predictions, "predicted_seed_mean": np.mean([r.predictions for r in runs], axis=0),
        })


def evenly(pairs: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``pairs``, evenly spaced (all if ``n`` is 0 or larger)."""
    if not n or len(pairs) <= n:
        return pairs
    return pairs[np.unique(np.linspace(0, len(pairs) - 1, n).round().astype(np.int64))]


def time_shifted(behaviour: BehaviourTargets, pairs: np.ndarray, seed: int) -> BehaviourTargets:
    """``behaviour`` with the values of ``pairs`` circularly shifted along their time order by
    25–75 % of their length (other values unchanged): the shuffled-time control's targets."""
    order = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
    rng = np.random.default_rng([seed, 7])
    shift = int(rng.integers(len(order) // 4, max(len(order) * 3 // 4, len(order) // 4 + 1)))
    values = behaviour.values.copy()
    values[order[:, 0], order[:, 1]] = np.roll(behaviour.values[order[:, 0], order[:, 1]], shift)
    return replace(behaviour, values=values, source=f"{behaviour.source} (time-shifted by {shift} windows)")


def ridge_run(dataset: NeuralDataset, behaviour: BehaviourTargets, train: np.ndarray, val: np.ndarray,
              test: np.ndarray, *, n_chunks: int = 2) -> tuple[np.ndarray, float, int, float, str]:
    """Ridge on the benchmark's window features, alpha by validation R²; returns test
    predictions, the validation R², the parameter count, seconds and a description."""
    from sklearn.metrics import r2_score

    from neurrator.evaluate.baselines import RidgePatches, window_features

    t0 = time.perf_counter()
    x_train, x_val = window_features(dataset, train, n_chunks=n_chunks), window_features(dataset, val, n_chunks=n_chunks)
    y_train, y_val = behaviour.batch(train), behaviour.batch(val)
    best = None
    for alpha in RIDGE_ALPHAS:
        model = RidgePatches(alpha=alpha).fit(x_train, y_train)
        score = r2_score(y_val, model.predict(x_val))
        if best is None or score > best[0]:
            best = (score, alpha, model)
    score, alpha, model = best
    pred = model.predict(window_features(dataset, test, n_chunks=n_chunks)).astype(np.float64)
    return pred, float(score), model.n_parameters, time.perf_counter() - t0, f"ridge (alpha {alpha:g}, {n_chunks} time chunks)"


def compare_behaviour(
    dataset: NeuralDataset,
    behaviour: BehaviourTargets,
    split: Split,
    *,
    decoder: dict,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    conditions: Sequence[str] = ("pretrained", "random", "scratch", "ridge"),
    condition_seeds: dict[str, Sequence[int]] | None = None,
    keep: tuple[str, int] | None = None,
    max_val_windows: int = 256,
    max_test_windows: int = 600,
    frame_rate: float | None = 30.0,
    block_seconds: float = 1.0,
    progress: bool = False,
) -> Comparison:
    """Fit every condition × seed on ``split`` and score it on its test windows.

    Parameters
    ----------
    dataset : z-scored with ``split``'s training windows (restricted to the units to use).
    behaviour : the target on ``dataset``'s grid.
    decoder : :class:`LMDecoder` parameters of the pretrained condition (``init`` is set per
        condition; ``seed`` per seed).
    max_val_windows, max_test_windows : evenly thinned validation and test windows (0 = all);
        neighbouring windows overlap by 16 of 20 bins, so thinning loses little.
    frame_rate, block_seconds : test blocks are ``(repeat, block_seconds of frames)``.
    condition_seeds : seeds of particular conditions (e.g. fewer for ``"shuffled"``).
    keep : ``(condition, seed)`` of the fitted estimator to return in :attr:`Comparison.kept`.
    """
    unknown = set(conditions) - set(CONDITIONS)
    if unknown or not conditions:
        raise InputError(None, f"unknown lm-decode conditions {sorted(unknown)}; choose from {', '.join(CONDITIONS)}")
    if not seeds:
        raise InputError(None, "lm-decode needs at least one seed")
    train = split.train[behaviour.valid(split.train)]
    val = evenly(split.val[behaviour.valid(split.val)], max_val_windows)
    test = evenly(split.test[behaviour.valid(split.test)], max_test_windows)
    if len(test) < 2:
        raise InputError(None, f"session {behaviour.session_id}: fewer than two test windows with a recorded {behaviour.name}")
    fit_split = replace(split, train=train, val=val, test=test)
    truth = behaviour.batch(test)
    blocks = test[:, 0] * 1_000_000 + stats.block_ids(test[:, 1], frame_rate=frame_rate, block_seconds=block_seconds)

    params = {k: v for k, v in decoder.items() if k not in ("init", "seed")}
    pretrained_config = LMDecoderConfig(n_units=dataset.n_units, **_config_fields(params))
    needs_backbone = any(c in conditions for c in ("pretrained", "shuffled", "scratch"))
    backbone = load_backbone(pretrained_config, cache_dir=params.get("cache_dir")) if needs_backbone else None
    scratch_width = None
    if "scratch" in conditions:
        scratch_width = match_scratch_width(pretrained_config, _trainable(pretrained_config, backbone))
    runs: list[DecodeRun] = []
    ridge_cache = None
    jobs = [(c, s) for c in conditions for s in (condition_seeds or {}).get(c, seeds)]
    kept = None
    for condition, seed in tqdm(jobs, desc="lm-decode fits", disable=not progress, unit="fit"):
        if condition == "ridge":
            if ridge_cache is None:  # closed form: one fit serves every seed
                ridge_cache = ridge_run(dataset, behaviour, train, val, test)
            pred, val_metric, n_params, seconds, description = ridge_cache
            runs.append(_run(condition, seed, truth, pred, val_metric, n_params, n_params, seconds, 0, "closed_form",
                             description))
            continue
        kwargs = {**params, "seed": seed, "init": "random" if condition == "random" else "pretrained"}
        target, shared = behaviour, backbone
        if condition == "random":
            shared = None
        elif condition == "scratch":
            kwargs.update(init="scratch", scratch_width=scratch_width)
            shared = None
        elif condition == "shuffled":
            target = time_shifted(behaviour, np.concatenate([train, val]), seed)
        t0 = time.perf_counter()
        est = LMDecoder(**kwargs).fit(dataset, target, fit_split, backbone=shared)
        pred = est.predict(dataset, test)
        if keep == (condition, seed):
            kept = est
        m = est.meta_.metrics
        runs.append(_run(condition, seed, truth, pred, m["val_metric"], m["trainable_parameters"],
                         m["total_parameters"], time.perf_counter() - t0, m["steps"], m["stopped"],
                         est.model_.config.describe))
    settings = {
        "decoder": params, "seeds": list(seeds), "conditions": list(conditions),
        "n_train_windows": len(train), "n_val_windows": len(val), "n_test_windows": len(test),
        "split": split.name, "blocks": f"(repeat, {block_seconds:g} s of frames)",
        "behaviour_source": behaviour.source,
    }
    return Comparison(behaviour.name, behaviour.unit, behaviour.session_id, test, truth, blocks, runs, settings, kept)


def _config_fields(params: dict) -> dict:
    keys = set(LMDecoderConfig.__dataclass_fields__) - {"n_units"}
    return {k: v for k, v in params.items() if k in keys}


def _trainable(config: LMDecoderConfig, backbone) -> int:
    """Trainable parameters of the pretrained decoder of ``config`` (built, not trained)."""
    from neurrator.encoder.lm_decoder import LMDecoderModel, describe_backbone

    config = LMDecoderConfig(**config.to_dict())
    describe_backbone(config, backbone)
    return LMDecoderModel(config, backbone).num_parameters()


def _run(condition, seed, truth, pred, val_metric, trainable, total, seconds, steps, stopped, description) -> DecodeRun:
    pred = np.asarray(pred, dtype=np.float64)
    residual = pred - truth
    r2 = 1.0 - float(np.sum(residual**2) / max(np.sum((truth - truth.mean()) ** 2), 1e-30))
    return DecodeRun(condition, seed, r2, float(np.sqrt(np.mean(residual**2))), float(val_metric), int(trainable),
                     int(total), round(float(seconds), 2), int(steps), stopped, pred, description)
