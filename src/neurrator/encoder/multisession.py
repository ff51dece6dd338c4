"""One encoder for many sessions with different units (POYO-style unit identity embeddings).

A single-session :class:`~neurrator.encoder.estimator.Neurrator` has one input column per unit,
so every session needs its own model and a pseudo-mouse stacks all units on one array (memory
grows with every unit). Here each unit owns a learned identity embedding and each session a
learned session embedding (the names follow POYO / torch_brain's ``unit_emb`` and
``session_emb``; the code is our own), and a window is read in as

    latent[t] = Σ_u x[t, u] · E[u] / sqrt(n_present) + mean of the present sessions' e_s
    x : z-scored spike counts of the units present in the window, E[u] : (unit_dim,)

    spikes of session s (B, T, n_s) ─┐
    spikes of session s' (B', T, n_s')─┼─ UnitReadIn ─→ latent (B, T, unit_dim) ─→ core ─→ patches
                                      ┘                 core = NeurratorPatches(n_units=unit_dim)

The core is the project's :class:`~neurrator.encoder.model.NeurratorPatches` (body + head) with
``unit_dim`` input channels and no unit bottleneck, shared by every session. Consequences:

- **Any number of sessions, any units.** A batch mixes windows of several sessions; each
  session's windows are read in with its own embeddings and the latents are concatenated, so
  activation memory grows with the units a batch touches, never with all units. Session data
  stay separate arrays (memory-mapped caches), never one pseudo-mouse array.
- **Any subset.** Absent units simply do not contribute (the sum runs over present units and is
  normalised by their number), so ``units="area:VISp"``, ``"cell_type:PV"`` or ``"random:30"``
  query one model. Queries may span sessions: windows of the same ``(repeat, frame)`` in several
  sessions are read in together (the pseudo-mouse, without stacking arrays). Training mixes in
  such pooled windows (``pool_fraction``) and random unit subsets so both are in distribution.
- **A new session adapts cheaply.** :meth:`MultiSessionNeurrator.adapt` adds its unit and
  session embeddings and trains only those (core frozen, its BatchNorm statistics included), as
  POYO fine-tunes a new session; CEBRA needs a new model per session instead.

Training is its own loop below (nanoGPT style, resumable, safetensors + JSON): the project's
:func:`~neurrator.encoder.train.train_encoder` samples windows of one :class:`NeuralDataset`
with one unit count, which is exactly the assumption this model removes. It reuses the loss,
the augmentation mask and the window sampler of that module.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pydantic
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn
from tqdm.auto import tqdm

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_bytes, atomic_write_json, sha256_array
from neurrator.core.linalg import fit_pca_basis
from neurrator.core.seed import seed_everything
from neurrator.core.threads import thread_limit
from neurrator.encoder.checkpoint import check_session, check_space, code_version
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.model import EncoderModelConfig, NeurratorPatches, patch_cosine, patch_loss
from neurrator.encoder.train import (
    RESUME_JSON,
    WindowSampler,
    augmentation_mask,
    load_resume,
    save_resume,
)
from neurrator.preprocess.subsets import subset_mask
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets

KIND = "multisession"
WEIGHTS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"
#: Batches are drawn with replacement, so there is no epoch order to resume (train.py's field).
NO_ORDER = torch.zeros(0, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# Data: one session's dataset and split
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionData:
    """One session's share of a multi-session fit.

    Attributes
    ----------
    key : the session's id (``units.session_id``); names its embeddings in the model.
    dataset : its :class:`NeuralDataset` (z-scored with ``split``'s training samples; a
        memory-mapped one from the ingest cache keeps RAM flat).
    split : its train / val / test ``(repeat, frame)`` pairs.
    """

    key: str
    dataset: NeuralDataset
    split: Split

    @classmethod
    def of(cls, dataset: NeuralDataset, split: Split, key: str | None = None) -> SessionData:
        """Wrap ``dataset``; the key defaults to its single ``session_id``."""
        return cls(session_key(dataset) if key is None else str(key), dataset, split)


def session_key(dataset: NeuralDataset) -> str:
    """The one session id of ``dataset`` (from ``units.session_id``); error for a pseudo-mouse."""
    ids = dataset.units["session_id"].astype(str).unique() if "session_id" in dataset.units else []
    if len(ids) != 1:
        raise InputError(None, f"dataset holds {len(ids)} sessions; a multi-session model takes one dataset per session")
    return str(ids[0])


# ---------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------


@dataclass
class ReadInPart:
    """Windows of one session that enter one batch.

    rows : (k,) int64 positions in the batch these windows belong to (a batch row may receive
        parts of several sessions: a pooled, cross-session window).
    x : (k, T, n_units_of_session) z-scored counts.
    mask : (k, n_units_of_session) or (n_units_of_session,) bool, the units present (``None``:
        all); absent units contribute nothing and are not counted.
    """

    slot: str
    rows: torch.Tensor
    x: torch.Tensor
    mask: torch.Tensor | None = None


class UnitReadIn(nn.Module):
    """Per-unit identity embeddings and per-session embeddings → a fixed-width latent sequence.

    Parameters live in two ``ParameterDict`` s keyed by slot (``"s0"``, ``"s1"``, ...):
    ``units[slot]`` (n_units, unit_dim) and ``sessions[slot]`` (unit_dim,).
    """

    def __init__(self, unit_dim: int):
        super().__init__()
        self.unit_dim = unit_dim
        self.units = nn.ParameterDict()
        self.sessions = nn.ParameterDict()

    def add_session(self, slot: str, n_units: int, generator: torch.Generator | None = None) -> None:
        """New embeddings: units ~ N(0, 1) (unit-variance latent for independent z-scored
        inputs), the session's offset 0."""
        self.units[slot] = nn.Parameter(torch.randn(n_units, self.unit_dim, generator=generator))
        self.sessions[slot] = nn.Parameter(torch.zeros(self.unit_dim))

    def forward(self, parts: Sequence[ReadInPart], batch: int) -> torch.Tensor:
        """Sum each part's units into its rows: → (batch, T, unit_dim)."""
        first = parts[0].x
        latent = first.new_zeros(batch, first.shape[1], self.unit_dim)
        present = first.new_zeros(batch)
        offset = first.new_zeros(batch, self.unit_dim)
        n_sessions = first.new_zeros(batch)
        for part in parts:
            x, emb = part.x, self.units[part.slot]
            count = x.new_full((x.shape[0],), float(x.shape[2]))
            if part.mask is not None:
                mask = part.mask.to(x.dtype).expand(x.shape[0], -1)
                x = x * mask.unsqueeze(1)
                count = mask.sum(dim=1)
            latent.index_add_(0, part.rows, torch.einsum("btu,uc->btc", x, emb))
            present.index_add_(0, part.rows, count)
            offset.index_add_(0, part.rows, self.sessions[part.slot].expand(len(part.rows), -1))
            n_sessions.index_add_(0, part.rows, torch.ones_like(count))
        latent = latent / present.clamp(min=1.0).sqrt()[:, None, None]
        return latent + (offset / n_sessions.clamp(min=1.0)[:, None])[:, None, :]


class MultiSessionPatches(nn.Module):
    """Parts of windows from any sessions → predicted patches (batch, n_patches, patch_dim).

    ``core_config.n_units`` is the latent width (``unit_dim``); ``slots`` lists the sessions'
    embedding slots with their unit counts, in the order they were added.
    """

    def __init__(self, core_config: EncoderModelConfig, slots: Mapping[str, int] | None = None):
        super().__init__()
        self.core_config = core_config
        self.read_in = UnitReadIn(core_config.n_units)
        self.core = NeurratorPatches(core_config)
        for slot, n_units in (slots or {}).items():
            self.read_in.add_session(slot, n_units)

    def forward(self, parts: Sequence[ReadInPart], batch: int) -> torch.Tensor:
        return self.core(self.read_in(parts, batch))

    def core_parameters(self) -> int:
        return sum(p.numel() for p in self.core.parameters())

    def embedding_parameters(self, slot: str | None = None) -> int:
        slots = [slot] if slot is not None else list(self.read_in.units)
        return sum(self.read_in.units[s].numel() + self.read_in.sessions[s].numel() for s in slots)


def core_config_from(config: EncoderConfig, unit_dim: int, n_patches: int, patch_dim: int, window: int) -> EncoderModelConfig:
    """The core's architecture: every field :class:`EncoderModelConfig` shares with the resolved
    ``EncoderConfig``, with ``unit_dim`` input channels and no unit bottleneck."""
    c = config.resolved()
    shared = {f.name: getattr(c, f.name) for f in fields(EncoderModelConfig) if f.name in type(c).model_fields}
    shared["conv_kernels"] = tuple(shared.get("conv_kernels", (3, 7, 15)))
    return EncoderModelConfig(**{**shared, "n_units": unit_dim, "unit_bottleneck": None, "n_patches": n_patches,
                                 "patch_dim": patch_dim, "window": window})


# ---------------------------------------------------------------------------------------------
# Batches: which windows of which sessions, with augmentation
# ---------------------------------------------------------------------------------------------


class _Session:
    """A session inside a fit: its slot, sampler and training table."""

    def __init__(self, slot: str, data: SessionData):
        self.slot, self.data = slot, data
        self.sampler = WindowSampler(data.dataset)
        ds = data.dataset
        self.train = np.asarray(data.split.train, dtype=np.int64).reshape(-1, 2)
        self.val = np.asarray(data.split.val, dtype=np.int64).reshape(-1, 2)
        self.is_train = np.zeros((ds.n_repeats, ds.n_frames), dtype=bool)
        self.is_train[self.train[:, 0], self.train[:, 1]] = True

    def has(self, pairs: np.ndarray) -> np.ndarray:
        r, f = pairs[:, 0], pairs[:, 1]
        inside = (r < self.is_train.shape[0]) & (f < self.is_train.shape[1])
        out = np.zeros(len(pairs), dtype=bool)
        out[inside] = self.is_train[r[inside], f[inside]]
        return out


def _batch_parts(
    sessions: list[_Session], picks: np.ndarray, *, jitter: int, unit_dropout: float, subset_fraction: float,
    pool_fraction: float, max_pool_sessions: int, generator: torch.Generator, device: torch.device,
) -> tuple[list[ReadInPart], np.ndarray]:
    """Read-in parts of a training batch and its frames.

    picks : (B, 2) ``(session index, training-pair index)``. A ``pool_fraction`` share of the
    windows also take the same ``(repeat, frame)`` from up to ``max_pool_sessions − 1`` other
    sessions that train on it (a cross-session pseudo-mouse window). Every part gets its own
    unit-dropout / subset mask; all parts of a window share its jitter.
    """
    b = len(picks)
    pairs = np.stack([sessions[s].train[i] for s, i in picks]) if b else np.zeros((0, 2), np.int64)
    shifts = torch.randint(-jitter, jitter + 1, (b,), generator=generator).numpy()
    members = [[] for _ in sessions]  # session → batch rows
    for row, s in enumerate(picks[:, 0]):
        members[s].append(row)
    if pool_fraction > 0 and len(sessions) > 1 and max_pool_sessions > 1:
        pooled = np.flatnonzero(torch.rand(b, generator=generator).numpy() < pool_fraction)
        for row in pooled:
            others = [k for k in range(len(sessions)) if k != picks[row, 0] and sessions[k].has(pairs[row : row + 1])[0]]
            order = torch.randperm(len(others), generator=generator).tolist()
            for k in order[: max_pool_sessions - 1]:
                members[others[k]].append(int(row))
    parts = []
    for s, rows in enumerate(members):
        if not rows:
            continue
        rows = np.asarray(rows, dtype=np.int64)
        sess = sessions[s]
        x = sess.sampler.gather(pairs[rows], shifts[rows])
        mask = augmentation_mask(len(rows), x.shape[2], unit_dropout=unit_dropout,
                                 subset_fraction=subset_fraction, generator=generator)
        parts.append(ReadInPart(sess.slot, torch.from_numpy(rows).to(device), x.to(device), mask.to(device)))
    return parts, pairs[:, 1]


# ---------------------------------------------------------------------------------------------
# The loop (fit and adapt share it)
# ---------------------------------------------------------------------------------------------


@dataclass
class LoopState:
    """Everything besides tensors that a resumed run needs."""

    step: int = 0
    best_metric: float = -math.inf
    best_step: int = 0
    bad_validations: int = 0
    seconds: float = 0.0
    stopped: str = ""
    history: list[dict] = field(default_factory=list)


@dataclass
class LoopResult:
    """What a fit or an adaptation did: optimizer steps, why it stopped, best validation cosine,
    wall seconds (across restarts), trainable parameters, one history row per validation."""

    steps: int
    stopped: str
    best_metric: float
    best_step: int
    seconds: float
    trainable_parameters: int
    history: list[dict]


@dataclass(frozen=True)
class Budget:
    """The one budget rule: optimizer steps, validation every ``val_every`` steps, early stop
    after ``patience`` validations without gain, optional wall-time cap (stop at the next
    validation after ``max_seconds``; 0 = none)."""

    max_steps: int
    val_every: int
    patience: int
    max_seconds: float = 0.0
    lr: float = 1e-3


def _cosine(step: int, total: int, base: float) -> float:
    return 0.5 * base * (1.0 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


@torch.no_grad()
def _validate(model: MultiSessionPatches, sessions: list[_Session], targets: PatchTargets, batch_size: int,
              device: torch.device) -> float:
    """Mean per-patch cosine over every session's validation windows (all units present)."""
    total, count = 0.0, 0
    for sess in sessions:
        for lo in range(0, len(sess.val), batch_size):
            chunk = sess.val[lo : lo + batch_size]
            part = ReadInPart(sess.slot, torch.arange(len(chunk), device=device), sess.sampler.gather(chunk).to(device))
            pred = model([part], len(chunk)).float().cpu()
            total += patch_cosine(pred, targets.batch(chunk[:, 1])).mean(dim=1).sum().item()
            count += len(chunk)
    return total / max(count, 1)


def _state_tensors(model: nn.Module, names: Sequence[str]) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    return {k: state[k].detach().clone() for k in names}


def _run_loop(
    model: MultiSessionPatches, sessions: list[_Session], targets: PatchTargets, config: EncoderConfig,
    budget: Budget, *, trainable: list[str], frozen_core: bool, pool_fraction: float, max_pool_sessions: int,
    seed: int, resume_dir: Path | None, fingerprint: dict, desc: str,
) -> LoopResult:
    """Train the parameters named in ``trainable``; keep the weights of the best validation."""
    c = config.resolved()
    device = torch.device(c.device)
    model.to(device)
    params = dict(model.named_parameters())
    for name, p in params.items():
        p.requires_grad_(name in trainable)
    chosen = [params[n] for n in trainable]
    # Saved as "best": everything that can change (trainable weights, and BatchNorm statistics
    # when the core trains).
    tracked = [k for k in model.state_dict() if k in trainable or (not frozen_core and k.startswith("core.")
                                                                    and ".basis." not in k)]
    optimizer = torch.optim.AdamW(chosen, lr=budget.lr, weight_decay=c.weight_decay)
    torch.manual_seed(seed)
    data_rng = torch.Generator().manual_seed(seed + 1)
    state, best = LoopState(), _state_tensors(model, tracked)
    if resume_dir is not None and (resume_dir / RESUME_JSON).is_file():
        state, best, _ = load_resume(resume_dir, model, optimizer, data_rng, fingerprint, state_type=LoopState)

    sizes = np.array([len(s.train) for s in sessions])
    owner = np.repeat(np.arange(len(sessions)), sizes)  # every training window, by session
    within = np.concatenate([np.arange(n) for n in sizes])
    subset_fraction = c.subset_fraction if c.subset_robust else 0.0
    bar = tqdm(total=budget.max_steps, initial=state.step, desc=desc, disable=not c.progress, unit="step", leave=False)
    t0, windows = time.perf_counter(), 0
    loss_sum, loss_count = 0.0, 0
    while not state.stopped:
        model.train()
        if frozen_core:
            model.core.eval()  # no dropout, BatchNorm statistics stay those of the fit
        lr = _cosine(state.step, budget.max_steps, budget.lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = torch.randint(0, len(owner), (c.batch_size,), generator=data_rng).numpy()
        picks = np.stack([owner[index], within[index]], axis=1)
        parts, frames = _batch_parts(
            sessions, picks, jitter=c.jitter_bins, unit_dropout=c.unit_dropout, subset_fraction=subset_fraction,
            pool_fraction=pool_fraction, max_pool_sessions=max_pool_sessions, generator=data_rng, device=device)
        pred = model(parts, len(picks))
        loss = patch_loss(pred, targets.batch(frames).to(device), mse_weight=c.mse_weight,
                          cosine_weight=c.cosine_weight, infonce_weight=c.infonce_weight, infonce_tau=c.infonce_tau)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(chosen, c.grad_clip)
        optimizer.step()
        state.step += 1
        windows += len(picks)
        loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
        bar.update(1)
        if state.step % budget.val_every and state.step < budget.max_steps:
            continue

        train_seconds = time.perf_counter() - t0
        model.eval()
        metric = _validate(model, sessions, targets, c.eval_batch_size, device)
        seconds = time.perf_counter() - t0
        state.seconds += seconds
        improved = metric > state.best_metric
        if improved:
            state.best_metric, state.best_step, state.bad_validations = metric, state.step, 0
            best = _state_tensors(model, tracked)
        else:
            state.bad_validations += 1
        state.history.append({"step": state.step, "train_loss": loss_sum / max(loss_count, 1), "val_metric": metric,
                              "lr": lr, "seconds": round(seconds, 3),
                              "windows_per_s": round(windows / max(train_seconds, 1e-9), 1), "best": improved})
        bar.set_postfix(val=f"{metric:.4f}")
        if state.bad_validations >= budget.patience:
            state.stopped = "early_stopping"
        elif state.step >= budget.max_steps:
            state.stopped = "max_steps"
        elif budget.max_seconds and state.seconds >= budget.max_seconds:
            state.stopped = "time_budget"
        if resume_dir is not None:
            save_resume(resume_dir, model, optimizer, best, data_rng, NO_ORDER, state, fingerprint)
        t0, windows, loss_sum, loss_count = time.perf_counter(), 0, 0.0, 0
    bar.close()
    model.load_state_dict(best, strict=False)
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    return LoopResult(state.step, state.stopped, state.best_metric, state.best_step, state.seconds,
                      sum(p.numel() for p in chosen), state.history)


# ---------------------------------------------------------------------------------------------
# Estimator
# ---------------------------------------------------------------------------------------------


class MultiSessionNeurrator(BaseEstimator):
    """Spike windows of many sessions → patch tensors, with one shared model (scikit-learn style).

    Parameters
    ----------
    seed : seeds weights, batches, augmentation and dropout (CPU runs are reproducible).
    unit_dim : width of the unit / session embeddings and of the core's input.
    encoder : :class:`~neurrator.encoder.config.EncoderConfig` fields for the core and its
        training (``preset``, ``head``, ``d_model``, ``batch_size``, ``unit_dropout``, ...);
        ``unit_bottleneck`` is ignored (the read-in replaces it). Default: the demo preset.
    max_steps, val_every, patience, max_minutes : the fit's budget (optimizer steps; validation
        every ``val_every`` steps; stop after ``patience`` validations without gain; optional
        wall-time cap, 0 = none). ``lr`` defaults to the encoder preset's.
    pool_fraction : share of training windows that also read the same ``(repeat, frame)`` of
        up to ``max_pool_sessions − 1`` other sessions (cross-session queries in distribution).
    adapt_steps, adapt_val_every, adapt_patience, adapt_lr : budget of :meth:`adapt`.

    Attributes (after ``fit`` / ``load``)
    ----------
    model_ : :class:`MultiSessionPatches`. ``sessions_`` : session key → record (slot, unit ids,
    z-score statistics). ``meta_`` : space, target shape, metrics. ``history_`` / ``adapt_history_``.

    >>> est = MultiSessionNeurrator(seed=0).fit([SessionData.of(ds, split) for ds, split in data], targets)  # doctest: +SKIP
    >>> est.predict(ds_a, split.test, units="area:VISp")                     # doctest: +SKIP
    >>> est.predict({"a": ds_a, "b": ds_b}, pairs, units="cell_type:PV")     # doctest: +SKIP
    >>> est.adapt(SessionData.of(new_ds, new_split), targets)                # doctest: +SKIP
    """

    def __init__(
        self, seed: int = 0, unit_dim: int = 64, encoder: dict | None = None, max_steps: int = 2000,
        val_every: int = 100, patience: int = 8, max_minutes: float = 0.0, lr: float | None = None,
        pool_fraction: float = 0.25, max_pool_sessions: int = 4, adapt_steps: int = 600, adapt_val_every: int = 50,
        adapt_patience: int = 4, adapt_lr: float = 1e-2,
    ):
        self.seed = seed
        self.unit_dim = unit_dim
        self.encoder = encoder
        self.max_steps = max_steps
        self.val_every = val_every
        self.patience = patience
        self.max_minutes = max_minutes
        self.lr = lr
        self.pool_fraction = pool_fraction
        self.max_pool_sessions = max_pool_sessions
        self.adapt_steps = adapt_steps
        self.adapt_val_every = adapt_val_every
        self.adapt_patience = adapt_patience
        self.adapt_lr = adapt_lr

    # ---- checks -------------------------------------------------------------------------------
    def _encoder_config(self) -> EncoderConfig:
        try:
            return EncoderConfig(**(self.encoder or {}))
        except pydantic.ValidationError as exc:
            err = exc.errors()[0]
            raise InputError(None, f"invalid encoder parameter {'.'.join(map(str, err['loc']))}: {err['msg']}") from None

    def _validate_params(self) -> None:
        checks = {
            "unit_dim": self.unit_dim >= 1, "max_steps": self.max_steps >= 1, "val_every": self.val_every >= 1,
            "patience": self.patience >= 1, "max_minutes": self.max_minutes >= 0,
            "pool_fraction": 0 <= self.pool_fraction <= 1, "max_pool_sessions": self.max_pool_sessions >= 1,
            "adapt_steps": self.adapt_steps >= 1, "adapt_val_every": self.adapt_val_every >= 1,
            "adapt_patience": self.adapt_patience >= 1, "adapt_lr": self.adapt_lr > 0,
            "lr": self.lr is None or self.lr > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(None, f"invalid {type(self).__name__} parameter(s): {', '.join(bad)}")

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    def _check_fitted(self) -> None:
        check_is_fitted(self, msg=f"This {type(self).__name__} is not fitted yet; call fit() or load() first.")

    @staticmethod
    def _check_sessions(sessions: Sequence[SessionData], targets: PatchTargets) -> None:
        if not sessions:
            raise InputError(None, "no sessions given")
        keys = [s.key for s in sessions]
        if len(set(keys)) != len(keys):
            raise InputError(None, f"session keys are not unique: {keys}")
        window = sessions[0].dataset.window
        for s in sessions:
            ds, split = s.dataset, s.split
            if ds.window != window:
                raise InputError(None, f"session {s.key}: window {ds.window} differs from {window}")
            if ds.n_frames != targets.n_frames:
                raise InputError(None, f"session {s.key} has {ds.n_frames} frames, the targets {targets.n_frames}")
            for name, pairs in (("train", split.train), ("val", split.val)):
                if len(pairs) == 0:
                    raise InputError(None, f"session {s.key}: split {split.name!r} has no {name} samples")
                if pairs[:, 0].max() >= ds.n_repeats or pairs[:, 1].max() >= ds.n_frames:
                    raise InputError(None, f"session {s.key}: {name} samples fall outside its {ds.n_repeats} repeats "
                                           f"× {ds.n_frames} frames")

    def _record(self, slot: str, s: SessionData) -> dict:
        return {"slot": slot, "unit_ids": s.dataset.unit_ids.tolist(),
                "zscore_mean": [float(x) for x in s.dataset.zscore.mean],
                "zscore_std": [float(x) for x in s.dataset.zscore.std],
                "split": {"name": s.split.name, "seed": s.split.seed, "n_train": len(s.split.train),
                          "n_val": len(s.split.val), "n_test": len(s.split.test)}}

    def _check_dataset(self, key: str, dataset: NeuralDataset) -> dict:
        if key not in self.sessions_:
            raise InputError(None, f"session {key!r} is unknown to this model (known: {', '.join(self.sessions_)}); "
                                   "adapt() it first")
        record = self.sessions_[key]
        check_session(SimpleNamespace(**record), dataset, what=f"multi-session encoder (session {key})")
        return record

    def _fingerprint(self, sessions: Sequence[SessionData], targets: PatchTargets, what: str) -> dict:
        return {
            "what": what, "params": json.loads(json.dumps(self.get_params(), default=str)),
            "sessions": {s.key: sha256_array(np.concatenate([s.dataset.zscore.mean, s.dataset.zscore.std,
                                                             s.split.train.ravel().astype(np.float32)]))
                         for s in sessions},
            "targets": f"{targets.info.space_id}:{targets.stimulus_hash}",
        }

    # ---- fit ----------------------------------------------------------------------------------
    def fit(self, sessions: Sequence[SessionData], targets: PatchTargets, *, resume_dir: str | Path | None = None):
        """Train the core and every session's embeddings on the sessions' training windows;
        early-stop on their validation windows; keep the best validation's weights."""
        self._validate_params()
        sessions = list(sessions)
        self._check_sessions(sessions, targets)
        c = self._encoder_config().resolved()
        seed_everything(self.seed)
        core = core_config_from(c, self.unit_dim, targets.info.n_patches, targets.info.dim, sessions[0].dataset.window)
        train_frames = np.unique(np.concatenate([s.split.train_frames for s in sessions]))
        basis = None
        if core.head == "basis":
            basis = fit_pca_basis(targets.patches, train_frames, core.basis_rank)
            core.basis_rank = basis.rank
        torch.manual_seed(self.seed)
        model = MultiSessionPatches(core)
        gen = torch.Generator().manual_seed(self.seed + 2)
        slots = {}
        for k, s in enumerate(sessions):
            slots[s.key] = f"s{k}"
            model.read_in.add_session(f"s{k}", s.dataset.n_units, gen)
        if basis is not None:
            model.core.head.basis.set(*(torch.from_numpy(a) for a in (basis.mean, basis.components, basis.scale)))
        budget = Budget(self.max_steps, self.val_every, self.patience, self.max_minutes * 60, self.lr or c.lr)
        run = [_Session(slots[s.key], s) for s in sessions]
        trainable = [n for n, _ in model.named_parameters()]
        with thread_limit(c.num_threads):
            result = _run_loop(model, run, targets, c, budget, trainable=trainable, frozen_core=False,
                               pool_fraction=self.pool_fraction, max_pool_sessions=self.max_pool_sessions,
                               seed=self.seed, resume_dir=None if resume_dir is None else Path(resume_dir),
                               fingerprint=self._fingerprint(sessions, targets, "fit"), desc="multi-session fit")
        self.model_ = model
        self.sessions_ = {s.key: self._record(slots[s.key], s) for s in sessions}
        self.history_ = result.history
        self.adapt_history_ = {}
        self.fit_result_ = result
        self.meta_ = {
            "space": targets.info.to_dict(), "target_shape": [targets.info.n_patches, targets.info.dim],
            "core_config": core.to_dict(), "encoder_config": c.model_dump(mode="json"),
            "metrics": {"val_cosine": result.best_metric, "best_step": result.best_step, "steps": result.steps,
                        "stopped": result.stopped, "seconds": round(result.seconds, 2),
                        "core_parameters": model.core_parameters(),
                        "embedding_parameters": model.embedding_parameters(),
                        "basis_explained_variance": None if basis is None else basis.explained},
        }
        return self

    def adapt(self, session: SessionData, targets: PatchTargets, *, resume_dir: str | Path | None = None) -> LoopResult:
        """Add a new session and train only its unit and session embeddings (the core and the
        other sessions' embeddings stay frozen). Returns steps, seconds and the validation cosine."""
        self._check_fitted()
        self.check_space(targets.info)
        if session.key in self.sessions_:
            raise InputError(None, f"session {session.key!r} is already in the model")
        self._check_sessions([session], targets)
        c = self._encoder_config().resolved()
        slot = f"s{len(self.model_.read_in.units)}"
        gen = torch.Generator().manual_seed(self.seed + 3)
        self.model_.read_in.add_session(slot, session.dataset.n_units, gen)
        trainable = [f"read_in.units.{slot}", f"read_in.sessions.{slot}"]
        budget = Budget(self.adapt_steps, self.adapt_val_every, self.adapt_patience, 0.0, self.adapt_lr)
        with thread_limit(c.num_threads):
            result = _run_loop(self.model_, [_Session(slot, session)], targets, c, budget, trainable=trainable,
                               frozen_core=True, pool_fraction=0.0, max_pool_sessions=1, seed=self.seed,
                               resume_dir=None if resume_dir is None else Path(resume_dir),
                               fingerprint=self._fingerprint([session], targets, f"adapt:{slot}"),
                               desc=f"adapt {session.key}")
        self.sessions_[session.key] = self._record(slot, session)
        self.adapt_history_[session.key] = {"steps": result.steps, "stopped": result.stopped,
                                            "val_cosine": result.best_metric, "seconds": round(result.seconds, 3),
                                            "trainable_parameters": result.trainable_parameters}
        return result

    # ---- predict ------------------------------------------------------------------------------
    def query_masks(self, datasets: Mapping[str, NeuralDataset], units) -> dict[str, np.ndarray]:
        """Per-session unit masks for a query over the union of ``datasets``' units.

        ``units``: ``None`` (all), a subset spec over the union table (``"group:V1"``,
        ``"cell_type:PV"``, ``"session:<id>+area:VISp"``, ``"random:30"``) or a mapping
        session key → (n_units,) bool mask.
        """
        if isinstance(units, Mapping):
            masks = {k: np.asarray(units.get(k, np.zeros(ds.n_units, bool)), dtype=bool) for k, ds in datasets.items()}
            for k, m in masks.items():
                if m.shape != (datasets[k].n_units,):
                    raise InputError(None, f"unit mask of session {k} has shape {m.shape}, expected ({datasets[k].n_units},)")
        elif units is None:
            masks = {k: np.ones(ds.n_units, dtype=bool) for k, ds in datasets.items()}
        else:
            table = pd.concat([ds.units.assign(session_id=k) for k, ds in datasets.items()], axis=0)
            mask = subset_mask(table, str(units), rng=np.random.default_rng(self.seed))
            bounds = np.cumsum([0] + [ds.n_units for ds in datasets.values()])
            masks = {k: mask[bounds[i] : bounds[i + 1]] for i, k in enumerate(datasets)}
        if not any(m.any() for m in masks.values()):
            raise InputError(None, f"unit subset {units!r} selects no units")
        return masks

    @torch.no_grad()
    def predict(self, datasets, pairs: np.ndarray, units=None, batch_size: int = 256) -> torch.Tensor:
        """Predicted patches (n, n_patches, dim) of ``(repeat, frame)`` pairs (n, 2).

        ``datasets`` : one session's :class:`NeuralDataset`, or a mapping session key →
        dataset; with several, each window reads the same ``(repeat, frame)`` of every session
        that has units in the query (a cross-session population).
        """
        self._check_fitted()
        if isinstance(datasets, NeuralDataset):
            datasets = {session_key(datasets): datasets}
        records = {k: self._check_dataset(k, ds) for k, ds in datasets.items()}
        masks = self.query_masks(datasets, units)
        active = [k for k in datasets if masks[k].any()]
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        for k in active:
            if len(pairs) and (pairs[:, 0].max() >= datasets[k].n_repeats or pairs[:, 1].max() >= datasets[k].n_frames):
                raise InputError(None, f"pairs fall outside session {k}'s {datasets[k].n_repeats} repeats × "
                                       f"{datasets[k].n_frames} frames")
        c = self._encoder_config().resolved()
        device = torch.device(c.device)
        self.model_.to(device).eval()
        samplers = {k: WindowSampler(datasets[k]) for k in active}
        query = {k: None if masks[k].all() else torch.from_numpy(masks[k]).to(device) for k in active}
        out = torch.empty((len(pairs), *self.meta_["target_shape"]), dtype=torch.float32)
        with thread_limit(c.num_threads):
            for lo in range(0, len(pairs), batch_size):
                chunk = pairs[lo : lo + batch_size]
                rows = torch.arange(len(chunk), device=device)
                parts = [ReadInPart(records[k]["slot"], rows, samplers[k].gather(chunk).to(device), query[k])
                         for k in active]
                out[lo : lo + len(chunk)] = self.model_(parts, len(chunk)).float().cpu()
        return out

    def score(self, datasets, pairs: np.ndarray, targets: PatchTargets, units=None) -> float:
        """Mean per-patch cosine between predicted and true patches of ``pairs``."""
        self.check_space(targets.info)
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        pred = self.predict(datasets, pairs, units)
        return float(patch_cosine(pred, targets.batch(pairs[:, 1])).mean().item()) if len(pairs) else float("nan")

    def check_space(self, space) -> None:
        self._check_fitted()
        check_space(SimpleNamespace(space=self.meta_["space"], target_shape=self.meta_["target_shape"]), space,
                    source=None)

    # ---- persistence --------------------------------------------------------------------------
    def save(self, folder: str | Path) -> list[Path]:
        """``checkpoint.safetensors`` (weights; no pickle) + ``checkpoint.json`` (what they mean)."""
        self._check_fitted()
        folder = Path(folder)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.model_.state_dict().items()}
        meta = {"format": "neurrator-encoder", "kind": KIND, "params": self.get_params(), "sessions": self.sessions_,
                "history": self.history_, "adapt_history": self.adapt_history_, "code_version": code_version(),
                **self.meta_}
        weights = atomic_write_bytes(folder / WEIGHTS_FILE, save_safetensors(tensors, metadata={"format": KIND}))
        return [weights, atomic_write_json(folder / META_FILE, meta)]

    @classmethod
    def load(cls, folder: str | Path) -> MultiSessionNeurrator:
        """Load a model written by :meth:`save`; :class:`InputError` naming the file if it is
        missing, corrupt or not a multi-session checkpoint."""
        folder = Path(folder)
        meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
        for path in (meta_path, weights_path):
            if not path.is_file():
                raise InputError(path, "missing; fit and save a multi-session encoder first")
        try:
            meta = json.loads(meta_path.read_text())
            if meta.get("kind") != KIND:
                raise ValueError(f"holds a {meta.get('kind')!r} encoder, not a multi-session one")
            est = cls(**meta["params"])
            core = EncoderModelConfig.from_dict(meta["core_config"])
            slots = {r["slot"]: len(r["unit_ids"]) for r in meta["sessions"].values()}
        except (ValueError, TypeError, KeyError) as exc:
            raise InputError(meta_path, f"corrupt multi-session checkpoint metadata: {exc}") from None
        model = MultiSessionPatches(core, dict(sorted(slots.items(), key=lambda kv: int(kv[0][1:]))))
        try:
            model.load_state_dict(load_safetensors(weights_path.read_bytes()))
        except Exception as exc:  # noqa: BLE001 - safetensors and load_state_dict raise several types
            raise InputError(weights_path, f"weights do not fit the checkpoint's architecture: {exc}") from None
        est.model_ = model.eval()
        est.sessions_ = meta["sessions"]
        est.history_, est.adapt_history_ = meta["history"], meta["adapt_history"]
        est.meta_ = {k: meta[k] for k in ("space", "target_shape", "core_config", "encoder_config", "metrics")}
        return est

