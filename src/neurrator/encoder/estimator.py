"""scikit-learn-style estimators around the encoder models.

>>> enc = Neurrator(seed=0, max_epochs=20).fit(dataset, targets, split)      # doctest: +SKIP
>>> patches = enc.predict(dataset, split.test, units="area:VISp")            # doctest: +SKIP
>>> enc.score(dataset, split.test, targets)                                  # doctest: +SKIP
>>> enc.save("runs/demo/train")                                              # doctest: +SKIP
>>> Neurrator.load("runs/demo/train", expect_units=dataset.unit_ids,
...                expect_space=targets.info)                                # doctest: +SKIP

One model answers for any subset of its units: ``units=`` masks the others to z-score 0 (the
unit's training mean), which subset-robust training makes an in-distribution input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch

from neurrator.core.errors import InputError
from neurrator.core.linalg import fit_pca_basis
from neurrator.core.seed import seed_everything
from neurrator.core.threads import thread_limit
from neurrator.encoder.checkpoint import (
    CheckpointMeta,
    check_space,
    check_units,
    load_checkpoint,
    save_checkpoint,
)
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.model import (
    EncoderModelConfig,
    NeurratorPatches,
    NeurratorRetrieval,
    patch_cosine,
)
from neurrator.encoder.train import (
    PatchTask,
    RetrievalTask,
    TrainResult,
    WindowSampler,
    train_encoder,
)
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets

UnitsArg = str | np.ndarray | list | None


def _model_config(config: EncoderConfig, n_units: int, n_patches: int, patch_dim: int, **extra) -> EncoderModelConfig:
    c = config.resolved()
    return EncoderModelConfig(
        n_units=n_units, n_patches=n_patches, patch_dim=patch_dim,
        conv_kernels=tuple(c.conv_kernels), conv_channels=c.conv_channels,
        unit_bottleneck=c.unit_bottleneck or None, d_model=c.d_model, n_heads=c.n_heads,
        ff_dim=c.ff_dim, temporal_layers=c.temporal_layers, patch_layers=c.patch_layers,
        dropout=c.dropout, head=c.head, memory=c.memory, basis_rank=c.basis_rank,
        basis_hidden=c.basis_hidden, **extra,
    )


def mean_patch_baseline(targets: PatchTargets, train_frames: np.ndarray, pairs: np.ndarray, chunk: int = 256) -> float:
    """Validation cosine of always predicting the mean training patch tensor (the floor to beat)."""
    frames = np.unique(train_frames)
    total = None
    for lo in range(0, len(frames), chunk):
        part = targets.batch(frames[lo : lo + chunk]).sum(dim=0)
        total = part if total is None else total + part
    mean = (total / len(frames)).unsqueeze(0)
    score = 0.0
    for lo in range(0, len(pairs), chunk):
        true = targets.batch(pairs[lo : lo + chunk, 1])
        score += patch_cosine(mean.expand_as(true), true).mean(dim=1).sum().item()
    return score / max(len(pairs), 1)


class _EncoderEstimator:
    """Shared plumbing: parameters, input checks, unit masks, batched inference, save/load."""

    kind = ""

    def __init__(self, seed: int = 0, **params: Any):
        self.seed = seed
        self.params = params
        try:
            self.config = EncoderConfig(**params)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(None, f"invalid encoder parameter {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    def get_params(self) -> dict:
        return {"seed": self.seed, **self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ---- checks ----------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise InputError(None, f"{type(self).__name__} is not fitted; call fit() or load() first")

    @staticmethod
    def _check_inputs(dataset: NeuralDataset, targets: PatchTargets, split: Split) -> None:
        if targets.patches.shape[1:] != (targets.info.n_patches, targets.info.dim):
            raise InputError(None, f"targets of shape {targets.patches.shape[1:]} do not match space "
                                   f"{targets.info.space_id!r} ({targets.info.n_patches} × {targets.info.dim})")
        for name, pairs in (("train", split.train), ("val", split.val)):
            if len(pairs) == 0:
                raise InputError(None, f"split {split.name!r} has no {name} samples")
            if pairs[:, 1].max() >= targets.n_frames or pairs[:, 0].max() >= dataset.n_repeats:
                raise InputError(None, f"split {split.name!r} {name} samples fall outside the dataset "
                                       f"({dataset.n_repeats} repeats) or the targets ({targets.n_frames} frames)")

    def _check_session(self, dataset: NeuralDataset) -> None:
        check_units(self.meta_, dataset.unit_ids, source=None)
        same = np.allclose(dataset.zscore.mean, self.meta_.zscore_mean, rtol=1e-5, atol=1e-6) and np.allclose(
            dataset.zscore.std, self.meta_.zscore_std, rtol=1e-5, atol=1e-6)
        if not same:
            raise InputError(None, "session was z-scored with other statistics than the encoder was trained on "
                                   "(a different split or ingest); re-ingest with the training split")

    def unit_mask(self, dataset: NeuralDataset, units: UnitsArg) -> torch.Tensor | None:
        """(n_units,) bool mask for ``units``: None (all), a subset spec (``"area:VISp"``,
        ``"random:30"``, ...), a boolean mask, or a list of unit ids."""
        if units is None:
            return None
        if isinstance(units, str):
            from neurrator.preprocess.subsets import subset_mask

            mask = subset_mask(dataset.units, units, rng=np.random.default_rng(self.seed))
        else:
            arr = np.asarray(units)
            if arr.dtype == bool:
                if arr.shape != (dataset.n_units,):
                    raise InputError(None, f"unit mask has shape {arr.shape}, expected ({dataset.n_units},)")
                mask = arr
            else:
                mask = np.isin(dataset.unit_ids.astype(str), arr.astype(str))
                if mask.sum() != len(np.unique(arr)):
                    raise InputError(None, f"{len(np.unique(arr)) - int(mask.sum())} of the requested unit ids "
                                           "are not in this session")
        if not mask.any():
            raise InputError(None, f"unit subset {units!r} selects no units")
        return torch.from_numpy(np.asarray(mask, dtype=bool))

    @torch.no_grad()
    def _forward(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg, batch_size: int):
        """Yield (lo, hi, model output) over batches of ``pairs``."""
        self._check_fitted()
        self._check_session(dataset)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        mask = self.unit_mask(dataset, units)
        sampler = WindowSampler(dataset)
        config = self.config.resolved()
        device = torch.device(config.device)
        self.model_.to(device).eval()
        mask = None if mask is None else mask.to(device)
        with thread_limit(config.num_threads):
            for lo in range(0, len(pairs), batch_size):
                chunk = pairs[lo : lo + batch_size]
                yield lo, lo + len(chunk), self.model_(sampler.gather(chunk).to(device), mask).float().cpu()

    def _fit_model(self, model, task, dataset, split, *, resume_dir, log_path, on_epoch_end) -> TrainResult:
        return train_encoder(
            model, task, dataset, split.train, split.val, self.config, seed=self.seed,
            resume_dir=resume_dir, log_path=log_path, on_epoch_end=on_epoch_end,
        )

    def _make_meta(self, model, dataset, targets, split, result: TrainResult, metrics: dict, **extra) -> CheckpointMeta:
        return CheckpointMeta(
            kind=self.kind,
            model_config=model.config.to_dict(),
            encoder_config=self.config.resolved().model_dump(mode="json"),
            unit_ids=dataset.unit_ids.tolist(),
            zscore_mean=[float(x) for x in dataset.zscore.mean],
            zscore_std=[float(x) for x in dataset.zscore.std],
            space=targets.info.to_dict(),
            target_shape=[targets.info.n_patches, targets.info.dim],
            seed=self.seed,
            split={"name": split.name, "seed": split.seed, "n_train": len(split.train),
                   "n_val": len(split.val), "n_test": len(split.test)},
            metrics={"val_cosine": result.best_metric, "best_epoch": result.best_epoch, "epochs": result.epochs,
                     "seconds": round(result.seconds, 2), "stopped": result.stopped,
                     "n_parameters": model.num_parameters(), **metrics},
            history=result.history,
            **extra,
        )

    # ---- persistence ------------------------------------------------------------------------
    def save(self, folder: str | Path) -> list[Path]:
        """Write ``checkpoint.safetensors`` + ``checkpoint.json`` into ``folder``."""
        self._check_fitted()
        return save_checkpoint(folder, self.model_, self.meta_)

    @classmethod
    def load(cls, folder: str | Path, *, expect_units=None, expect_space=None):
        """Load a saved estimator; :class:`InputError` if units or vision space do not match."""
        model, meta = load_checkpoint(folder, expect_units=expect_units, expect_space=expect_space)
        if meta.kind != cls.kind:
            raise InputError(Path(folder), f"holds a {meta.kind!r} encoder, not a {cls.kind!r} one")
        est = cls(seed=meta.seed, **meta.encoder_config)
        est.model_, est.meta_ = model, meta
        est.history_ = meta.history
        return est

    def check_space(self, space) -> None:
        """:class:`InputError` unless ``space`` (SpaceInfo or id) is the one trained for."""
        self._check_fitted()
        check_space(self.meta_, space, source=None)


class Neurrator(_EncoderEstimator):
    """Spike windows → patch tensors of the frame shown (paper §3.1).

    Parameters
    ----------
    seed : seeds weight init, data order, augmentation and dropout (CPU runs are reproducible).
    **params : any :class:`~neurrator.encoder.config.EncoderConfig` field, e.g. ``preset="paper"``,
        ``head="basis"``, ``max_epochs=20``, ``subset_robust=False``.

    Attributes (after ``fit`` or ``load``)
    ----------
    model_ : the trained :class:`NeurratorPatches`.
    meta_ : :class:`CheckpointMeta` (units, z-score stats, space, config, metrics).
    history_ : per-epoch log.
    """

    kind = "patches"

    def fit(
        self, dataset: NeuralDataset, targets: PatchTargets, split: Split, *,
        resume_dir: str | Path | None = None, log_path: str | Path | None = None, on_epoch_end=None,
    ) -> Neurrator:
        """Train on ``split.train``, early-stop on ``split.val``; keep the best epoch's weights."""
        self._check_inputs(dataset, targets, split)
        c = self.config.resolved()
        seed_everything(self.seed)
        model_config = _model_config(c, dataset.n_units, targets.info.n_patches, targets.info.dim)
        basis = None
        if c.head == "basis":  # fitted to the training frames only
            basis = fit_pca_basis(targets.patches, split.train_frames, c.basis_rank)
            model_config.basis_rank = basis.rank
        torch.manual_seed(self.seed)
        model = NeurratorPatches(model_config)
        metrics = {"mean_patch_baseline": mean_patch_baseline(targets, split.train_frames, split.val)}
        if basis is not None:
            model.head.basis.set(*(torch.from_numpy(a) for a in (basis.mean, basis.components, basis.scale)))
            metrics["basis_explained_variance"] = basis.explained
        result = self._fit_model(model, PatchTask(targets, c), dataset, split,
                                 resume_dir=resume_dir, log_path=log_path, on_epoch_end=on_epoch_end)
        self.model_, self.history_ = model, result.history
        self.meta_ = self._make_meta(model, dataset, targets, split, result, metrics)
        return self

    def predict(
        self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None, batch_size: int = 256,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Predicted patches of ``(repeat, frame)`` pairs (n, 2): (n, n_patches, dim) tensor.

        ``units`` restricts the input to a subset (spec string, bool mask or unit ids); the other
        units are set to z-score 0. ``dtype=torch.float16`` halves memory for large outputs.
        """
        self._check_fitted()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        shape = self.meta_.target_shape
        out = torch.empty((len(pairs), *shape), dtype=dtype)
        for lo, hi, pred in self._forward(dataset, pairs, units, batch_size):
            out[lo:hi] = pred.to(dtype)
        return out

    def score(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets, units: UnitsArg = None,
              batch_size: int = 256) -> float:
        """Mean per-patch cosine between predicted and true patches of ``pairs``."""
        self.check_space(targets.info)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        total = 0.0
        for lo, hi, pred in self._forward(dataset, pairs, units, batch_size):
            total += patch_cosine(pred, targets.batch(pairs[lo:hi, 1])).mean(dim=1).sum().item()
        return total / max(len(pairs), 1)


class NeurratorRetriever(_EncoderEstimator):
    """Retrieval variant (paper A.5/A.6): classify a window over the training frames, then hand
    the narrator the real patches of the retrieved frame (always on the vision-space manifold).

    Same parameters as :class:`Neurrator`; the head is an attention-pooled classifier.
    ``meta_.vocabulary`` lists the training frames in class order.
    """

    kind = "retrieval"

    def fit(
        self, dataset: NeuralDataset, targets: PatchTargets, split: Split, *,
        resume_dir: str | Path | None = None, log_path: str | Path | None = None, on_epoch_end=None,
    ) -> NeurratorRetriever:
        self._check_inputs(dataset, targets, split)
        c = self.config.resolved()
        seed_everything(self.seed)
        vocabulary = split.train_frames
        model_config = _model_config(c, dataset.n_units, targets.info.n_patches, targets.info.dim,
                                     n_classes=len(vocabulary))
        torch.manual_seed(self.seed)
        model = NeurratorRetrieval(model_config)
        metrics = {"mean_patch_baseline": mean_patch_baseline(targets, split.train_frames, split.val),
                   "chance_top1": 1.0 / len(vocabulary)}
        result = self._fit_model(model, RetrievalTask(targets, vocabulary), dataset, split,
                                 resume_dir=resume_dir, log_path=log_path, on_epoch_end=on_epoch_end)
        self.model_, self.history_ = model, result.history
        self.meta_ = self._make_meta(model, dataset, targets, split, result, metrics,
                                     vocabulary=[int(f) for f in vocabulary])
        return self

    def predict_logits(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None,
                       batch_size: int = 256) -> torch.Tensor:
        """(n, n_classes) logits over ``meta_.vocabulary``."""
        parts = [logits for _, _, logits in self._forward(dataset, pairs, units, batch_size)]
        return torch.cat(parts) if parts else torch.empty(0, len(self.meta_.vocabulary))

    def predict(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None,
                batch_size: int = 256) -> np.ndarray:
        """Retrieved training frame of each pair: (n,) int64 frame indices."""
        logits = self.predict_logits(dataset, pairs, units, batch_size)
        return np.asarray(self.meta_.vocabulary, dtype=np.int64)[logits.argmax(dim=1).numpy()]

    def score(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets, units: UnitsArg = None,
              batch_size: int = 256) -> float:
        """Mean per-patch cosine between the retrieved frames' patches and the true ones."""
        self.check_space(targets.info)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        retrieved = self.predict(dataset, pairs, units, batch_size)
        total = 0.0
        for lo in range(0, len(pairs), batch_size):
            cos = patch_cosine(targets.batch(retrieved[lo : lo + batch_size]), targets.batch(pairs[lo : lo + batch_size, 1]))
            total += cos.mean(dim=1).sum().item()
        return total / max(len(pairs), 1)
