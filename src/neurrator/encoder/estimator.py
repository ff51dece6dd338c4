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

import numpy as np
import pydantic
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from neurrator.core.errors import InputError
from neurrator.core.linalg import fit_pca_basis
from neurrator.core.seed import seed_everything
from neurrator.core.threads import thread_limit
from neurrator.encoder.checkpoint import (
    CheckpointMeta,
    check_session,
    check_space,
    load_checkpoint,
    save_checkpoint,
)
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.inference import predict_windows
from neurrator.encoder.retinotopy import estimate_retinotopy
from neurrator.encoder.model import (
    EncoderModelConfig,
    NeurratorDualTower,
    NeurratorPatches,
    NeurratorRetrieval,
    patch_cosine,
)
from neurrator.encoder.train import (
    ContrastiveTask,
    PatchTask,
    RetrievalTask,
    TrainResult,
    _device_of,
    soft_retrieve,
    train_encoder,
)
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets

UnitsArg = str | np.ndarray | list | None


def _model_config(config: EncoderConfig, n_units: int, n_patches: int, patch_dim: int, **extra) -> EncoderModelConfig:
    c = config.resolved()
    fields = dict(
        n_units=n_units, n_patches=n_patches, patch_dim=patch_dim,
        conv_kernels=tuple(c.conv_kernels), conv_channels=c.conv_channels,
        unit_bottleneck=c.unit_bottleneck or None, d_model=c.d_model, n_heads=c.n_heads,
        ff_dim=c.ff_dim, temporal_layers=c.temporal_layers, patch_layers=c.patch_layers,
        dropout=c.dropout, head=c.head, memory=c.memory, basis_rank=c.basis_rank,
        basis_hidden=c.basis_hidden, contrastive_dim=c.contrastive_dim if c.contrastive_weight else 0,
        contrastive_tau=c.contrastive_tau, contrastive_channels=c.contrastive_channels,
        rf_units=c.rf_units, rf_chunks=c.rf_chunks,
    )
    return EncoderModelConfig(**{**fields, **extra})


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


def released_validation(split: Split, n_val_repeats: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) pairs as the released ``train_patches.py`` carves them: every non-test
    sample, with the last ``n_val_repeats`` repeats (by index) for validation.

    The released data hold 18 non-test repeats and validate on the last 2; here the non-test
    repeats are those of ``split.train`` and ``split.val``. Z-score statistics stay the split's.
    """
    pool = np.concatenate([split.train, split.val])
    repeats = np.unique(pool[:, 0])
    if len(repeats) <= n_val_repeats:
        raise InputError(None, f"released validation needs more than {n_val_repeats} non-test repeats, "
                               f"split {split.name!r} has {len(repeats)}")
    is_val = np.isin(pool[:, 0], repeats[-n_val_repeats:])
    return pool[~is_val], pool[is_val]


class _EncoderEstimator(BaseEstimator):
    """Shared plumbing: parameters, input checks, unit masks, batched inference, save/load.

    Follows scikit-learn's estimator contract: ``__init__`` stores its arguments and nothing
    else (every :class:`~neurrator.encoder.config.EncoderConfig` field plus ``seed``, with the
    same defaults), ``get_params``/``set_params``/``sklearn.base.clone`` work, parameters are
    validated in ``fit``, and using an unfitted estimator raises ``NotFittedError``.
    """

    kind = ""

    def __init__(
        self, *, seed: int = 0, preset: str = "demo", head=None, memory: str = "sequence", unit_bottleneck=None,
        conv_kernels=(3, 7, 15), conv_channels=None, d_model=None, n_heads=None, ff_dim=None,
        temporal_layers: int = 2, patch_layers: int = 2, dropout: float = 0.2, basis_rank=None, basis_hidden=None,
        loss_space: str = "patches", mse_weight: float = 0.5, cosine_weight: float = 0.5,
        infonce_weight: float = 0.0, infonce_tau: float = 0.07,
        rf_units: int = 0, rf_chunks: int = 2, contrastive_dim: int = 128, contrastive_tau: float = 0.07,
        contrastive_channels: int = 8, contrastive_weight: float = 0.0,
        lr=None, weight_decay: float = 1e-3, grad_clip: float = 1.0, batch_size: int = 64, max_epochs=None,
        max_steps=None, val_every=None, patience=None, lr_schedule=None, windows_per_epoch=None, validation=None,
        max_minutes: float = 0.0, sampling: str = "bin", jitter_bins: int = 2, unit_dropout: float = 0.1,
        mixup: float = 0.0,
        subset_robust=None, subset_fraction: float = 0.25, subset_groups: bool = False,
        eval_batch_size: int = 256, device: str = "cpu",
        num_threads=None, inference_dtype: str = "float32", progress: bool = True,
    ):
        self.seed = seed
        self.preset = preset
        self.head = head
        self.memory = memory
        self.unit_bottleneck = unit_bottleneck
        self.conv_kernels = conv_kernels
        self.conv_channels = conv_channels
        self.d_model = d_model
        self.n_heads = n_heads
        self.ff_dim = ff_dim
        self.temporal_layers = temporal_layers
        self.patch_layers = patch_layers
        self.dropout = dropout
        self.basis_rank = basis_rank
        self.basis_hidden = basis_hidden
        self.loss_space = loss_space
        self.mse_weight = mse_weight
        self.cosine_weight = cosine_weight
        self.infonce_weight = infonce_weight
        self.infonce_tau = infonce_tau
        self.rf_units = rf_units
        self.rf_chunks = rf_chunks
        self.contrastive_dim = contrastive_dim
        self.contrastive_tau = contrastive_tau
        self.contrastive_channels = contrastive_channels
        self.contrastive_weight = contrastive_weight
        self.lr = lr
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_steps = max_steps
        self.val_every = val_every
        self.patience = patience
        self.lr_schedule = lr_schedule
        self.windows_per_epoch = windows_per_epoch
        self.validation = validation
        self.max_minutes = max_minutes
        self.sampling = sampling
        self.jitter_bins = jitter_bins
        self.unit_dropout = unit_dropout
        self.mixup = mixup
        self.subset_robust = subset_robust
        self.subset_fraction = subset_fraction
        self.subset_groups = subset_groups
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.num_threads = num_threads
        self.inference_dtype = inference_dtype
        self.progress = progress

    @property
    def config(self) -> EncoderConfig:
        """The parameters as a validated :class:`EncoderConfig` (``InputError`` if invalid)."""
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "seed"}
        try:
            return EncoderConfig(**params)
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(None, f"invalid encoder parameter {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    def _train_val(self, config: EncoderConfig, split: Split) -> tuple[np.ndarray, np.ndarray]:
        return released_validation(split) if config.validation == "released" else (split.train, split.val)

    # ---- checks ----------------------------------------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        check_is_fitted(self, msg=f"This {type(self).__name__} is not fitted yet; call fit() or load() first.")

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
        check_session(self.meta_, dataset)

    def unit_mask(self, dataset: NeuralDataset, units: UnitsArg) -> torch.Tensor | None:
        """(n_units,) bool mask for ``units``: None (all), a subset spec (``"area:VISp"``,
        ``"random:30"``, ...), a boolean mask, or a list of unit ids."""
        from neurrator.preprocess.subsets import resolve_unit_mask

        mask = resolve_unit_mask(dataset.units, units, rng=np.random.default_rng(self.seed))
        if mask is None:
            return None
        return torch.from_numpy(np.asarray(mask, dtype=bool))

    @torch.no_grad()
    def _forward(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg, batch_size: int,
                 shifts: tuple[int, ...] = (0,)):
        """Yield (indices, model output) over batches of ``pairs`` (each bin projected once for all
        windows sharing it, :mod:`neurrator.encoder.inference`); with several ``shifts`` (bins)
        the output is the mean over the windows shifted by each (temporal ensembling)."""
        self._check_fitted()
        self._check_session(dataset)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        mask = self.unit_mask(dataset, units)
        config = self.config.resolved()
        self.model_.to(torch.device(config.device)).eval()
        with thread_limit(config.num_threads):
            yield from predict_windows(self.model_, dataset, pairs, unit_mask=mask, shifts=shifts,
                                       batch_size=batch_size, dtype=config.inference_dtype)

    def _fit_model(self, model, task, dataset, split, config, *, resume_dir, log_path, on_validation) -> TrainResult:
        train, val = self._train_val(config, split)
        return train_encoder(
            model, task, dataset, train, val, config, seed=self.seed,
            resume_dir=resume_dir, log_path=log_path, on_validation=on_validation,
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
                     "steps": result.steps, "best_step": result.best_step,
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
        known = set(cls._get_param_names())
        est = cls(seed=meta.seed, **{k: v for k, v in meta.encoder_config.items() if k in known})
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
    every :class:`~neurrator.encoder.config.EncoderConfig` field, by keyword, e.g.
        ``preset="paper"``, ``head="basis"``, ``max_steps=2000``, ``subset_robust=False``.

    Attributes (after ``fit`` or ``load``)
    ----------
    model_ : the trained :class:`NeurratorPatches`.
    meta_ : :class:`CheckpointMeta` (units, z-score stats, space, config, metrics).
    history_ : per-epoch log.
    """

    kind = "patches"

    def fit(
        self, dataset: NeuralDataset, targets: PatchTargets, split: Split, *,
        resume_dir: str | Path | None = None, log_path: str | Path | None = None, on_validation=None,
    ) -> Neurrator:
        """Train on ``split.train``, early-stop on ``split.val`` (or the released validation
        repeats, see ``validation``); keep the best validation's weights."""
        c = self.config.resolved()
        self._check_inputs(dataset, targets, split)
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
        if model.local is not None:  # retinotopy from the training windows only
            support, weight, _ = estimate_retinotopy(dataset, targets, self._train_val(c, split)[0], c.rf_units)
            model.local.set_support(support, weight)
        result = self._fit_model(model, PatchTask(targets, c), dataset, split, c,
                                 resume_dir=resume_dir, log_path=log_path, on_validation=on_validation)
        self.model_, self.history_ = model, result.history
        self.meta_ = self._make_meta(model, dataset, targets, split, result, metrics)
        return self

    def predict(
        self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None, batch_size: int = 256,
        dtype: torch.dtype = torch.float32, shifts: tuple[int, ...] = (0,),
    ) -> torch.Tensor:
        """Predicted patches of ``(repeat, frame)`` pairs (n, 2): (n, n_patches, dim) tensor.

        ``units`` restricts the input to a subset (spec string, bool mask or unit ids); the other
        units are set to z-score 0. ``dtype=torch.float16`` halves memory for large outputs.
        ``shifts`` (bins): average the predictions of the frame-centred window shifted by each,
        e.g. ``(-1, 0)`` (temporal ensembling; wider shifts read bins further from the frame, so
        a split's leakage guard must cover them).
        """
        self._check_fitted()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        shape = self.meta_.target_shape
        out = torch.empty((len(pairs), *shape), dtype=dtype)
        for index, pred in self._forward(dataset, pairs, units, batch_size, tuple(shifts)):
            out[torch.from_numpy(index)] = pred.to(dtype)
        return out

    def score(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets, units: UnitsArg = None,
              batch_size: int = 256) -> float:
        """Mean per-patch cosine between predicted and true patches of ``pairs``."""
        self.check_space(targets.info)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        total = 0.0
        for index, pred in self._forward(dataset, pairs, units, batch_size):
            total += patch_cosine(pred, targets.batch(pairs[index, 1])).mean(dim=1).sum().item()
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
        resume_dir: str | Path | None = None, log_path: str | Path | None = None, on_validation=None,
    ) -> NeurratorRetriever:
        c = self.config.resolved()
        self._check_inputs(dataset, targets, split)
        seed_everything(self.seed)
        vocabulary = split.train_frames
        model_config = _model_config(c, dataset.n_units, targets.info.n_patches, targets.info.dim,
                                     n_classes=len(vocabulary))
        torch.manual_seed(self.seed)
        model = NeurratorRetrieval(model_config)
        metrics = {"mean_patch_baseline": mean_patch_baseline(targets, split.train_frames, split.val),
                   "chance_top1": 1.0 / len(vocabulary)}
        result = self._fit_model(model, RetrievalTask(targets, vocabulary), dataset, split, c,
                                 resume_dir=resume_dir, log_path=log_path, on_validation=on_validation)
        self.model_, self.history_ = model, result.history
        self.meta_ = self._make_meta(model, dataset, targets, split, result, metrics,
                                     vocabulary=[int(f) for f in vocabulary])
        return self

    def predict_logits(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None,
                       batch_size: int = 256) -> torch.Tensor:
        """(n, n_classes) logits over ``meta_.vocabulary``."""
        self._check_fitted()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        out = torch.empty(len(pairs), len(self.meta_.vocabulary))
        for index, logits in self._forward(dataset, pairs, units, batch_size):
            out[torch.from_numpy(index)] = logits
        return out

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


class NeurratorDINA(_EncoderEstimator):
    """Contrastive dual towers (DINA, Wang et al. 2026): spike windows and vision-space frames
    embedded in one joint space by symmetric InfoNCE with a learnable temperature; identification
    by cosine in that space (:class:`~neurrator.encoder.model.NeurratorDualTower`).

    Same parameters as :class:`Neurrator` (``contrastive_dim``, ``contrastive_tau`` and
    ``contrastive_channels`` shape the towers). The image tower reads any frame's patches, so
    frames never trained on can be candidates (zero-shot identification).

    Validation (early stopping) scores the mean per-patch cosine of the joint-space soft retrieval
    over the training frames (:class:`~neurrator.encoder.train.ContrastiveTask`), the quantity
    every patch method is early-stopped on.
    """

    kind = "dina"

    def fit(
        self, dataset: NeuralDataset, targets: PatchTargets, split: Split, *,
        resume_dir: str | Path | None = None, log_path: str | Path | None = None, on_validation=None,
    ) -> NeurratorDINA:
        c = self.config.resolved()
        self._check_inputs(dataset, targets, split)
        seed_everything(self.seed)
        model_config = _model_config(c, dataset.n_units, targets.info.n_patches, targets.info.dim,
                                     contrastive_dim=c.contrastive_dim)
        torch.manual_seed(self.seed)
        model = NeurratorDualTower(model_config)
        metrics = {"mean_patch_baseline": mean_patch_baseline(targets, split.train_frames, split.val)}
        result = self._fit_model(model, ContrastiveTask(targets, split.train_frames), dataset, split, c,
                                 resume_dir=resume_dir, log_path=log_path, on_validation=on_validation)
        self.model_, self.history_ = model, result.history
        metrics["temperature"] = float(1.0 / model.towers.scale().item())
        self.meta_ = self._make_meta(model, dataset, targets, split, result, metrics,
                                     vocabulary=[int(f) for f in split.train_frames])
        return self

    def embed(self, dataset: NeuralDataset, pairs: np.ndarray, units: UnitsArg = None, batch_size: int = 256,
              shifts: tuple[int, ...] = (0,)) -> torch.Tensor:
        """Neural-tower embeddings of ``(repeat, frame)`` pairs: (n, contrastive_dim), unit norm
        (the mean over ``shifts`` is re-normalised)."""
        self._check_fitted()
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        out = torch.empty(len(pairs), self.model_.config.contrastive_dim)
        for index, emb in self._forward(dataset, pairs, units, batch_size, tuple(shifts)):
            out[torch.from_numpy(index)] = emb
        return torch.nn.functional.normalize(out, dim=-1)

    @torch.no_grad()
    def embed_frames(self, targets: PatchTargets, frames: np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """Image-tower embeddings of ``frames``: (m, contrastive_dim), unit norm."""
        self._check_fitted()
        self.check_space(targets.info)
        frames = np.asarray(frames, dtype=np.int64)
        self.model_.eval()
        device = _device_of(self.model_)
        return torch.cat([self.model_.embed_frames(targets.batch(frames[lo : lo + batch_size]).to(device)).cpu()
                          for lo in range(0, len(frames), batch_size)]) if len(frames) else torch.empty(0)

    def similarity(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets, candidates: np.ndarray,
                   units: UnitsArg = None, shifts: tuple[int, ...] = (0,)) -> torch.Tensor:
        """Joint-space cosine between each pair's window and each candidate frame: (n, m)."""
        return self.embed(dataset, pairs, units, shifts=shifts) @ self.embed_frames(targets, candidates).T

    def predict(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets | None = None,
                candidates: np.ndarray | None = None, units: UnitsArg = None,
                shifts: tuple[int, ...] = (0,)) -> torch.Tensor:
        """Patch tensors by joint-space soft retrieval: (n, n_patches, dim), each the
        ``softmax(cos / τ)``-weighted mean of the ``candidates``' real patches (default: every
        frame of ``targets``; this reads the candidates' patches, as identification does)."""
        self._check_fitted()
        if targets is None:
            raise InputError(None, "NeurratorDINA.predict needs the targets whose frames it retrieves among")
        candidates = np.arange(targets.n_frames) if candidates is None else np.asarray(candidates, dtype=np.int64)
        bank = (self.embed_frames(targets, candidates), targets.batch(candidates).reshape(len(candidates), -1))
        return soft_retrieve(self.model_, self.embed(dataset, pairs, units, shifts=shifts), bank)

    def score(self, dataset: NeuralDataset, pairs: np.ndarray, targets: PatchTargets, units: UnitsArg = None) -> float:
        """Mean per-patch cosine of the soft retrieval over the training frames (the validation metric)."""
        pred = self.predict(dataset, pairs, targets, np.asarray(self.meta_.vocabulary), units)
        return float(patch_cosine(pred, targets.batch(np.asarray(pairs)[:, 1])).mean())
