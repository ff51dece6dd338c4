"""scikit-learn-style estimator around :class:`~neurrator.encoder.lm_decoder.LMDecoderModel`.

>>> speed = behaviour_targets(read_behaviour(nwb), dataset, "running_speed")       # doctest: +SKIP
>>> dec = LMDecoder(mode="lora", seed=0).fit(dataset, speed, split)               # doctest: +SKIP
>>> dec.predict(dataset, split.test, units="area:VISp")    # (n,) cm/s              # doctest: +SKIP
>>> vis = LMDecoder().fit(dataset, targets, split)          # PatchTargets → vision   # doctest: +SKIP
>>> vis.predict(dataset, split.test)                        # (n, n_patches, dim)    # doctest: +SKIP

``fit(dataset, y, split)``: ``y`` is a :class:`BehaviourTargets` (regression of the z-scored
behaviour, scored by R²) or :class:`PatchTargets` (the basis head; scored by patch cosine). The
training loop is the encoder's (:func:`neurrator.encoder.train.train_encoder`): the same
optimiser, cosine schedule, jitter, unit dropout, subset-robust masks and early stopping.

Checkpoints: ``checkpoint.safetensors`` + ``checkpoint.json`` (format ``neurrator-lm-decoder``).
The weights of a frozen *pretrained* backbone are not stored: they are reloaded from the
backbone id, which the JSON records. Everything else (adapter, head, LoRA, fine-tuned or
randomly initialised backbones, basis) is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.base import BaseEstimator
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_is_fitted

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_bytes, atomic_write_json
from neurrator.core.linalg import fit_pca_basis
from neurrator.core.threads import thread_limit
from neurrator.encoder.checkpoint import check_session, check_space, check_units, code_version
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.lm_decoder import (
    SMOLLM2,
    LMDecoderConfig,
    LMDecoderModel,
    describe_backbone,
    load_backbone,
)
from neurrator.encoder.model import patch_cosine
from neurrator.encoder.train import PatchTask, TrainResult, WindowSampler, train_encoder
from neurrator.preprocess.behaviour import BehaviourTargets
from neurrator.preprocess.subsets import resolve_unit_mask
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets, SpaceInfo

WEIGHTS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"
FORMAT = "neurrator-lm-decoder"


class BehaviourTask:
    """Regress one z-scored behaviour (loss: MSE; validation: R², higher is better).

    ``values`` : (n_repeats, n_frames) float32 z-scored targets (NaN where not recorded; such
    pairs must not be passed).
    """

    def __init__(self, values: np.ndarray, fingerprint: str):
        self.values = np.asarray(values, dtype=np.float32)
        self._fingerprint = fingerprint

    def fingerprint(self) -> str:
        return self._fingerprint

    def target(self, pairs: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.values[pairs[:, 0], pairs[:, 1]])

    def loss(self, model, x, mask, pairs):
        return F.mse_loss(model(x, mask)[:, 0], self.target(pairs).to(x.device))

    @torch.no_grad()
    def validate(self, model, sampler: WindowSampler, pairs, shifts, batch_size):
        device = next(model.parameters()).device
        pred = []
        for lo in range(0, len(pairs), batch_size):
            x = sampler.gather(pairs[lo : lo + batch_size], None if shifts is None else shifts[lo : lo + batch_size])
            pred.append(model(x.to(device))[:, 0].float().cpu())
        return float(r2_score(self.target(pairs).numpy(), torch.cat(pred).numpy()))


@dataclass
class LMDecoderMeta:
    """Everything in ``checkpoint.json``: what the weights mean and how they were trained.

    ``target`` is ``{"kind": "behaviour", "name", "unit", "mean", "std", "session_id"}`` or
    ``{"kind": "vision", "space": SpaceInfo dict, "target_shape": [n_patches, dim]}``.
    """

    model_config: dict
    params: dict
    target: dict
    unit_ids: list
    zscore_mean: list[float]
    zscore_std: list[float]
    seed: int
    split: dict
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    code_version: dict = field(default_factory=code_version)


class LMDecoder(BaseEstimator):
    """A language-model backbone decoding behaviour or patch targets from spike windows.

    Parameters (stored as given; checked in :meth:`fit`)
    ----------
    backbone : hub id (``gpt2``, ``Qwen/Qwen2.5-0.5B``, a DeepSeek id), local folder, or
        ``"smollm2"`` (offline SmolLM2-135M-Instruct). ``gguf_file`` : GGUF file inside it.
    init : ``"pretrained"``, ``"random"`` (same architecture, random weights) or ``"scratch"``
        (plain transformer of width ``scratch_width``; see :func:`match_scratch_width`).
    mode : ``"frozen"``, ``"lora"`` or ``"full"`` backbone training.
    n_layers : keep the first ``n_layers`` blocks of the backbone (``None`` = all).
    seq_bins : tokens per window (its centre 120 Hz bins).
    pooling, lora_rank, lora_alpha, lora_targets, load_in_8bit, precision, scratch_width, scratch_layers,
    scratch_heads, basis_rank, basis_hidden, dropout : see :class:`LMDecoderConfig`.
    lr, weight_decay, batch_size, max_steps, val_every, patience, jitter_bins, unit_dropout,
    subset_robust : the training loop's options (see :class:`~neurrator.encoder.config.EncoderConfig`):
        at most ``max_steps`` optimizer steps of ``batch_size`` windows (one per 120 Hz bin of the
        training pairs, ±``jitter_bins``), validation every ``val_every`` steps, early stopping
        after ``patience`` validations without improvement, cosine learning rate per step.
    num_threads, device, progress : execution. ``cache_dir`` : where the offline SmolLM2's
        de-quantised weights are kept between runs (see :func:`smollm2_base`).
    seed : seeds the adapter, head, LoRA and random backbones, data order and augmentation.

    Attributes (after ``fit`` or ``load``)
    ----------
    model_ : the trained :class:`LMDecoderModel`.  meta_ : :class:`LMDecoderMeta`.
    """

    def __init__(
        self, backbone: str = SMOLLM2, gguf_file: str | None = None, init: str = "pretrained", mode: str = "frozen",
        n_layers: int | None = 2, seq_bins: int = 8, pooling: str = "mean", lora_rank: int = 8, lora_alpha: int = 16,
        lora_targets: list[str] | None = None, load_in_8bit: bool = False, precision: str = "float32",
        scratch_width: int = 64,
        scratch_layers: int = 2, scratch_heads: int = 4, basis_rank: int = 64, basis_hidden: int = 256,
        dropout: float = 0.1, lr: float = 1e-3, weight_decay: float = 1e-2, batch_size: int = 32,
        max_steps: int = 48, val_every: int = 12, patience: int = 3, jitter_bins: int = 2, unit_dropout: float = 0.1, subset_robust: bool = True, num_threads: int = 1,
        device: str = "cpu", progress: bool = False, cache_dir: str | None = None, seed: int = 0,
    ):
        self.backbone = backbone
        self.gguf_file = gguf_file
        self.init = init
        self.mode = mode
        self.n_layers = n_layers
        self.seq_bins = seq_bins
        self.pooling = pooling
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.lora_targets = lora_targets
        self.load_in_8bit = load_in_8bit
        self.precision = precision
        self.scratch_width = scratch_width
        self.scratch_layers = scratch_layers
        self.scratch_heads = scratch_heads
        self.basis_rank = basis_rank
        self.basis_hidden = basis_hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_steps = max_steps
        self.val_every = val_every
        self.patience = patience
        self.jitter_bins = jitter_bins
        self.unit_dropout = unit_dropout
        self.subset_robust = subset_robust
        self.num_threads = num_threads
        self.device = device
        self.progress = progress
        self.cache_dir = cache_dir
        self.seed = seed

    # ---- configs ---------------------------------------------------------------------------
    def model_config(self, dataset: NeuralDataset, head: str, **shape) -> LMDecoderConfig:
        """The :class:`LMDecoderConfig` this estimator builds for ``dataset`` (validates params)."""
        choices = {"init": ("pretrained", "random", "scratch"), "mode": ("frozen", "lora", "full"),
                   "pooling": ("auto", "last", "mean"), "precision": ("float32", "bfloat16")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(None, f"LMDecoder {name}={getattr(self, name)!r}; choose one of {', '.join(allowed)}")
        if not 1 <= self.seq_bins <= dataset.window:
            raise InputError(None, f"seq_bins={self.seq_bins} must be between 1 and the window ({dataset.window} bins)")
        if self.n_layers is not None and self.n_layers < 1:
            raise InputError(None, f"n_layers={self.n_layers} must be at least 1 (or None for all layers)")
        if dataset.n_units < 1:
            raise InputError(None, "the dataset has no units")
        return LMDecoderConfig(
            n_units=dataset.n_units, window=dataset.window, seq_bins=self.seq_bins, backbone=self.backbone,
            gguf_file=self.gguf_file, init=self.init, mode="full" if self.init == "scratch" else self.mode,
            n_layers=self.n_layers, pooling=self.pooling, lora_rank=self.lora_rank, lora_alpha=self.lora_alpha,
            lora_targets=self.lora_targets, load_in_8bit=self.load_in_8bit, precision=self.precision, head=head,
            basis_rank=self.basis_rank, basis_hidden=self.basis_hidden, dropout=self.dropout,
            scratch_width=self.scratch_width, scratch_layers=self.scratch_layers, scratch_heads=self.scratch_heads,
            **shape,
        )

    def training_config(self) -> EncoderConfig:
        """The training loop's settings (architecture fields of EncoderConfig are unused)."""
        return EncoderConfig(
            lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, max_steps=self.max_steps,
            max_epochs=10_000, val_every=self.val_every, patience=self.patience, lr_schedule="step",
            windows_per_epoch=0, validation="split", sampling="bin", jitter_bins=self.jitter_bins,
            unit_dropout=self.unit_dropout, subset_robust=self.subset_robust, num_threads=self.num_threads,
            device=self.device, progress=self.progress,
        )

    def build_model(self, config: LMDecoderConfig, backbone: torch.nn.Module | None = None) -> LMDecoderModel:
        """A fresh model for ``config``; ``backbone`` reuses an already loaded one (same init)."""
        if config.init != "scratch" and backbone is None:
            backbone = load_backbone(config, seed=self.seed, device=self.device, cache_dir=self.cache_dir)
        elif backbone is not None:
            describe_backbone(config, backbone)
        torch.manual_seed(self.seed)
        return LMDecoderModel(config, backbone)

    # ---- fit ---------------------------------------------------------------------------------
    def fit(self, dataset: NeuralDataset, y: BehaviourTargets | PatchTargets, split: Split, *,
            backbone: torch.nn.Module | None = None, log_path: str | Path | None = None) -> LMDecoder:
        """Train on ``split.train``, early-stop on ``split.val``; keep the best epoch's weights.

        ``backbone`` : a backbone already loaded with :func:`load_backbone` for these params
        (saves reloading it for every seed); it is copied before any training touches it.
        """
        train, val = _pairs(split.train), _pairs(split.val)
        for name, pairs in (("train", train), ("val", val)):
            if len(pairs) == 0:
                raise InputError(None, f"split {split.name!r} has no {name} samples")
            if pairs[:, 0].max() >= dataset.n_repeats or pairs[:, 1].max() >= dataset.n_frames:
                raise InputError(None, f"split {split.name!r} {name} samples fall outside the dataset")
        if isinstance(y, BehaviourTargets):
            if y.values.shape != (dataset.n_repeats, dataset.n_frames):
                raise InputError(None, f"{y.name} targets of shape {y.values.shape} do not match the dataset "
                                       f"({dataset.n_repeats} repeats × {dataset.n_frames} frames)")
            train, val = train[y.valid(train)], val[y.valid(val)]
            if len(train) < 2 or len(val) < 2:
                raise InputError(None, f"session {y.session_id}: too few training/validation windows with a recorded {y.name}")
            mean, std = float(np.mean(y.batch(train))), float(np.std(y.batch(train)))
            if std < 1e-9:
                raise InputError(None, f"session {y.session_id}: {y.name} is constant over the training windows")
            config = self.model_config(dataset, "behaviour", n_outputs=1)
            model = self.build_model(config, backbone)
            task = BehaviourTask((y.values - mean) / std, y.fingerprint())
            target = {"kind": "behaviour", "name": y.name, "unit": y.unit, "mean": mean, "std": std,
                      "session_id": y.session_id, "source": y.source}
            metrics: dict = {}
        elif isinstance(y, PatchTargets):
            if y.patches.shape[1:] != (y.info.n_patches, y.info.dim) or train[:, 1].max() >= y.n_frames:
                raise InputError(None, f"targets of space {y.info.space_id!r} do not fit the split or their space")
            config = self.model_config(dataset, "basis", n_patches=y.info.n_patches, patch_dim=y.info.dim)
            basis = fit_pca_basis(y.patches, np.unique(train[:, 1]), config.basis_rank)
            config.basis_rank = basis.rank
            model = self.build_model(config, backbone)
            model.head.basis.set(*(torch.from_numpy(a) for a in (basis.mean, basis.components, basis.scale)))
            task = PatchTask(y, self.training_config().resolved())
            target = {"kind": "vision", "space": y.info.to_dict(), "target_shape": [y.info.n_patches, y.info.dim]}
            metrics = {"basis_explained_variance": basis.explained}
        else:
            raise InputError(None, f"LMDecoder.fit needs BehaviourTargets or PatchTargets, not {type(y).__name__}")
        result: TrainResult = train_encoder(model, task, dataset, train, val, self.training_config(),
                                            seed=self.seed, log_path=log_path)
        self.model_ = model
        self.meta_ = LMDecoderMeta(
            model_config=config.to_dict(), params=self.get_params(), target=target,
            unit_ids=dataset.unit_ids.tolist(), zscore_mean=[float(x) for x in dataset.zscore.mean],
            zscore_std=[float(x) for x in dataset.zscore.std], seed=self.seed,
            split={"name": split.name, "seed": split.seed, "n_train": len(train), "n_val": len(val)},
            metrics={"val_metric": result.best_metric, "best_step": result.best_step, "steps": result.steps,
                     "seconds": round(result.seconds, 2), "stopped": result.stopped,
                     "trainable_parameters": model.num_parameters(),
                     "total_parameters": model.num_parameters(trainable=False), **metrics},
            history=result.history,
        )
        return self

    # ---- inference ---------------------------------------------------------------------------
    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        check_is_fitted(self, msg=f"This {type(self).__name__} is not fitted yet; call fit() or load() first.")


    @property
    def target_kind(self) -> str:
        self._check_fitted()
        return self.meta_.target["kind"]

    @torch.no_grad()
    def _forward(self, dataset: NeuralDataset, pairs: np.ndarray, units, batch_size: int):
        self._check_fitted()
        check_session(self.meta_, dataset, what="decoder")
        pairs = _pairs(pairs)
        mask = resolve_unit_mask(dataset.units, units, rng=np.random.default_rng(self.seed))
        mask = None if mask is None else torch.from_numpy(mask)
        sampler = WindowSampler(dataset)
        device = torch.device(self.device)
        self.model_.to(device).eval()
        with thread_limit(self.num_threads):
            for lo in range(0, len(pairs), batch_size):
                x = sampler.gather(pairs[lo : lo + batch_size]).to(device)
                yield lo, self.model_(x, None if mask is None else mask.to(device)).float().cpu()

    def predict(self, dataset: NeuralDataset, pairs: np.ndarray, units=None, batch_size: int = 256,
                dtype: torch.dtype = torch.float32):
        """Behaviour: (n,) float64 in the target's unit. Vision: (n, n_patches, dim) tensor of
        ``dtype`` (each batch is cast as it comes, e.g. float16 to halve the memory of the
        narrate stage's predictions, like :meth:`Neurrator.predict`).

        ``units`` restricts the input to a subset (spec string, bool mask or unit ids); the
        others are set to z-score 0. A subset selecting nothing is an :class:`InputError`.
        """
        cast = dtype if self.target_kind == "vision" else torch.float32
        chunks = [out.to(cast) for _, out in self._forward(dataset, pairs, units, batch_size)]
        if not chunks:
            return np.empty(0) if self.target_kind == "behaviour" else torch.empty((0, *self.meta_.target["target_shape"]), dtype=cast)
        out = torch.cat(chunks)
        if self.target_kind == "behaviour":
            t = self.meta_.target
            return out[:, 0].double().numpy() * t["std"] + t["mean"]
        return out

    def score(self, dataset: NeuralDataset, pairs: np.ndarray, y, units=None) -> float:
        """R² (behaviour, finite targets only) or mean per-patch cosine (vision) on ``pairs``."""
        pairs = _pairs(pairs)
        if self.target_kind == "behaviour":
            pairs = pairs[y.valid(pairs)]
            return float(r2_score(y.batch(pairs), self.predict(dataset, pairs, units)))
        pred = self.predict(dataset, pairs, units)
        return float(patch_cosine(pred, y.batch(pairs[:, 1])).mean().item()) if len(pairs) else float("nan")

    # ---- persistence ------------------------------------------------------------------------
    def _stored_tensors(self) -> dict[str, torch.Tensor]:
        """State dict without the weights of a frozen pretrained backbone (reloaded by id)."""
        cfg = self.model_.config
        skip = cfg.init == "pretrained"
        return {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict(keep_vars=True).items()
                if not (skip and k.startswith("backbone.") and isinstance(v, torch.nn.Parameter) and not v.requires_grad)}

    def save(self, folder: str | Path) -> list[Path]:
        """Write ``checkpoint.safetensors`` + ``checkpoint.json`` into ``folder``."""
        self._check_fitted()
        folder = Path(folder)
        weights = atomic_write_bytes(folder / WEIGHTS_FILE, save_safetensors(self._stored_tensors(), metadata={"format": FORMAT}))
        meta = atomic_write_json(folder / META_FILE, {"format": FORMAT, **asdict(self.meta_)})
        return [weights, meta]

    @classmethod
    def load(cls, folder: str | Path, *, expect_units=None, expect_space: SpaceInfo | str | None = None) -> LMDecoder:
        """Load a saved decoder (reloading a frozen pretrained backbone from its id).

        ``expect_units`` : unit ids it will be applied to; ``expect_space`` : the vision space its
        predictions will be compared with or narrated in (a behaviour decoder is refused)."""
        folder = Path(folder)
        meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise InputError(path, "missing; run `neurrator lm-decode` first")
        try:
            raw = json.loads(meta_path.read_text())
            if raw.pop("format", None) != FORMAT:
                raise ValueError("not a neurrator LM-decoder checkpoint")
            meta = LMDecoderMeta(**raw)
            config = LMDecoderConfig.from_dict(meta.model_config)
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(meta_path, f"corrupt checkpoint metadata: {exc}") from None
        if expect_units is not None:
            check_units(meta, expect_units, source=meta_path)
        if expect_space is not None:
            if meta.target.get("kind") != "vision":
                raise InputError(meta_path, f"decodes {meta.target.get('name')}, not patches of a vision space")
            check_space(SimpleNamespace(space=meta.target["space"], target_shape=meta.target["target_shape"]),
                        expect_space, source=meta_path)
        est = cls(**meta.params)
        model = est.build_model(config)
        try:
            tensors = load_safetensors(weights_path.read_bytes())
            missing, unexpected = model.load_state_dict(tensors, strict=False)
        except Exception as exc:  # noqa: BLE001 - safetensors and load_state_dict raise several types
            raise InputError(weights_path, f"weights do not fit the checkpoint's architecture: {exc}") from None
        reloaded = {k for k, v in model.state_dict(keep_vars=True).items()
                    if k.startswith("backbone.") and isinstance(v, torch.nn.Parameter) and not v.requires_grad}
        if unexpected or (set(missing) - reloaded if config.init == "pretrained" else missing):
            raise InputError(weights_path, f"weights do not fit the checkpoint's architecture (missing "
                                           f"{sorted(set(missing) - reloaded)[:3]}, unexpected {unexpected[:3]})")
        est.model_, est.meta_ = model.eval(), meta
        return est

    @property
    def space(self) -> SpaceInfo | None:
        """The vision space of a vision decoder (``None`` for behaviour)."""
        return SpaceInfo.from_dict(self.meta_.target["space"]) if self.target_kind == "vision" else None


def _pairs(pairs) -> np.ndarray:
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
