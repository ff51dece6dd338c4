"""The training loop: spike windows in, patch tensors (or training-image classes) out.

Read top to bottom like nanoGPT's ``train.py``: settings, data, the schedule, the loop,
validation, early stopping, and a resume checkpoint written at every validation.

The budget is counted in optimizer steps: training stops at ``max_steps`` (or ``max_epochs``),
or after ``patience`` validations without improvement; validation runs every ``val_every``
steps (``0``: at the end of every epoch). An epoch is every training window once: one per
120 Hz bin of every training ``(repeat, frame)`` pair with ``sampling="bin"`` (4 per frame, as
released), one per pair with ``"frame"``, or a random ``windows_per_epoch`` of them.

Resume checkpoints (``resume_dir/state.safetensors`` + ``state.json``) hold the model, the best
weights so far, the AdamW moments, both RNG states (as uint8 tensors), the current epoch's
window order and position, the step and epoch, the best metric and the early-stopping counter.
They are written into a temp folder renamed into place, so a run killed at any moment (SIGKILL
included) restarts from its last validation and, with the same seed, ends with the same weights
as a run that was never interrupted. Nothing is pickled: tensors go to safetensors, everything
else to JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir, atomic_write_json, atomic_write_text, sha256_array
from neurrator.core.threads import thread_limit
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.model import _apply_unit_mask, patch_cosine, patch_loss
from neurrator.preprocess.types import NeuralDataset
from neurrator.vision.base import PatchTargets

RESUME_TENSORS = "state.safetensors"
RESUME_JSON = "state.json"


# ---------------------------------------------------------------------------------------------
# Data: windows are gathered from a strided view, targets from the (memory-mapped) cache
# ---------------------------------------------------------------------------------------------


class WindowSampler:
    """Cuts (window, frame) batches out of a :class:`NeuralDataset` without copying it.

    ``dataset.windows_view()`` is a strided view (n_repeats, n_positions, n_units, window);
    indexing it with a batch of (repeat, start) pairs copies only that batch.
    """

    def __init__(self, dataset: NeuralDataset):
        self.dataset = dataset
        self.view = dataset.windows_view()
        self.n_positions = self.view.shape[1]

    def gather(self, pairs: np.ndarray, shifts: np.ndarray | None = None) -> torch.Tensor:
        """Windows of ``(repeat, frame)`` pairs (n, 2), shifted per window by ``shifts`` bins.

        Returns (n, window, n_units) float32 (a transposed view of a fresh (n, n_units, window)
        array).
        """
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        start = self.dataset.window_start(pairs[:, 1])
        if shifts is not None:
            start = start + shifts
        start = np.clip(start, 0, self.n_positions - 1)
        batch = np.asarray(self.view[pairs[:, 0], start], dtype=np.float32)  # (n, n_units, window)
        return torch.from_numpy(batch).transpose(1, 2)


def augmentation_mask(
    batch: int, n_units: int, *, unit_dropout: float, subset_fraction: float, generator: torch.Generator,
    groups: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-window unit masks (batch, n_units) bool.

    Every window loses ``unit_dropout`` of its units at random. With subset-robust training a
    ``subset_fraction`` share of the windows instead keeps only k random units, k log-uniform
    between 1 and all, so that querying the model with a small population is in-distribution.
    With ``groups`` ((n_units,) int codes, e.g. the area of each unit), half of those windows keep
    the units of one random group instead, as a query with one area does.
    """
    mask = torch.rand(batch, n_units, generator=generator) >= unit_dropout
    if subset_fraction > 0:
        chosen = torch.rand(batch, generator=generator) < subset_fraction
        keep = torch.exp(torch.rand(batch, generator=generator) * math.log(n_units))  # 1 … n_units
        # Each unit kept with probability keep / n (cheaper than an exact-size draw), plus one sure unit.
        subset = torch.rand(batch, n_units, generator=generator) < (keep / n_units)[:, None]
        subset[torch.arange(batch), torch.randint(0, n_units, (batch,), generator=generator)] = True
        if groups is not None:
            by_group = torch.rand(batch, generator=generator) < 0.5
            pick = groups[torch.randint(0, n_units, (batch,), generator=generator)]  # a group, by its units' share
            subset = torch.where(by_group[:, None], groups[None, :] == pick[:, None], subset)
        mask = torch.where(chosen[:, None], subset, mask)
    return mask


def bin_offsets(bins_per_frame: int) -> np.ndarray:
    """Shifts (in bins) from a frame-centred window to the windows centred on each of the frame's
    bins: −2, −1, 0, +1 at 4 bins per frame (the frame-centred window is centred on bin 4f+2)."""
    return np.arange(bins_per_frame, dtype=np.int64) - bins_per_frame // 2


def expand_to_bins(pairs: np.ndarray, bins_per_frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Every bin's window of ``pairs``: ((n·bpf, 2) pairs, (n·bpf,) shifts), pair-major."""
    offsets = bin_offsets(bins_per_frame)
    return np.repeat(pairs, len(offsets), axis=0), np.tile(offsets, len(pairs))


# ---------------------------------------------------------------------------------------------
# Tasks: what a batch's loss is and how validation is scored (higher is better)
# ---------------------------------------------------------------------------------------------


class Task(Protocol):
    """What the loop needs from a task. ``pairs`` are the batch's ``(repeat, frame)`` pairs (n, 2):
    patch targets depend on the frame only, behaviour targets (``encoder.lm_estimator``) on both.
    ``mix``: the batch was mixed up (:class:`Mix`); mix the targets alike or refuse."""

    def loss(self, model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, pairs: np.ndarray,
             mix: Mix | None = None) -> torch.Tensor: ...

    def validate(self, model: torch.nn.Module, sampler: WindowSampler, pairs: np.ndarray, shifts: np.ndarray | None,
                 batch_size: int) -> float: ...

    def fingerprint(self) -> str:
        """Identifies the targets in resume checkpoints (a different target refuses to resume)."""
        ...


@dataclass(frozen=True)
class Mix:
    """Mixup of a batch: window i is ``lam[i] · x[i] + (1 − lam[i]) · x[partner[i]]`` and so is its
    target. ``partner`` (B,) int64 and ``lam`` (B,) float tensors."""

    partner: torch.Tensor
    lam: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        lam = self.lam.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)
        return lam * x + (1 - lam) * x[self.partner]


class PatchTask:
    """Regress patch tensors. Loss: ``patch_loss`` on the patches (``loss_space="patches"``) or
    the MSE of the basis head's whitened coefficients (``"whitened"``: every principal component
    weighs the same), + ``contrastive_weight`` × the DINA towers' InfoNCE when the model carries
    them (not on mixed-up batches); validation: mean per-patch cosine."""

    def __init__(self, targets: PatchTargets, config: EncoderConfig):
        self.targets = targets
        self.config = config

    def fingerprint(self) -> str:
        return f"{self.targets.info.space_id}:{self.targets.stimulus_hash}"

    def loss(self, model, x, mask, pairs, mix=None):
        c = self.config
        frames = pairs[:, 1]
        target = self.targets.batch(frames).to(x.device)
        if mix is not None:
            target = mix.apply(target)
        if not hasattr(model, "body"):  # another model predicting patches (e.g. the LM decoder's vision head)
            return patch_loss(model(x, mask), target, mse_weight=c.mse_weight, cosine_weight=c.cosine_weight,
                              infonce_weight=c.infonce_weight, infonce_tau=c.infonce_tau)
        x = _apply_unit_mask(x, mask)
        sequence, pooled = model.body(x)
        local = getattr(model, "local", None)
        if c.loss_space == "whitened" and hasattr(model.head, "coefficients") and local is None:
            coefficients = model.head.basis.project(target.flatten(1))
            loss = F.mse_loss(model.head.coefficients(sequence, pooled), coefficients)
        else:
            chunks = None if local is None else local.chunk_means(x)
            loss = patch_loss(
                model.decode(sequence, pooled, chunks), target, mse_weight=c.mse_weight,
                cosine_weight=c.cosine_weight, infonce_weight=c.infonce_weight, infonce_tau=c.infonce_tau,
            )
        if c.contrastive_weight and mix is None and getattr(model, "contrastive", None) is not None:
            frame_ids = torch.from_numpy(np.asarray(frames)).to(x.device)
            loss = loss + c.contrastive_weight * model.contrastive.loss(pooled, target, frame_ids)
        return loss

    @torch.no_grad()
    def validate(self, model, sampler, pairs, shifts, batch_size):
        total = 0.0
        for lo in range(0, len(pairs), batch_size):
            chunk = pairs[lo : lo + batch_size]
            x = sampler.gather(chunk, None if shifts is None else shifts[lo : lo + batch_size])
            pred = model(x.to(_device_of(model))).float().cpu()
            total += patch_cosine(pred, self.targets.batch(chunk[:, 1])).mean(dim=1).sum().item()
        return total / max(len(pairs), 1)


class RetrievalTask:
    """Classify windows over the training-image vocabulary (cross-entropy).

    Validation scores what the narrator would receive: the mean per-patch cosine between the
    real patches of the arg-max training frame and the true frame's patches, so it is
    comparable with :class:`PatchTask` and defined even for frames outside the vocabulary.
    """

    def __init__(self, targets: PatchTargets, vocabulary: np.ndarray):
        self.targets = targets
        self.vocabulary = np.asarray(vocabulary, dtype=np.int64)
        self.class_of_frame = np.full(targets.n_frames, -1, dtype=np.int64)
        self.class_of_frame[self.vocabulary] = np.arange(len(self.vocabulary))

    def fingerprint(self) -> str:
        return f"{self.targets.info.space_id}:{self.targets.stimulus_hash}"

    def loss(self, model, x, mask, pairs, mix=None):
        labels = torch.from_numpy(self.class_of_frame[pairs[:, 1]]).to(x.device)
        logits = model(x, mask)
        if mix is None:
            return F.cross_entropy(logits, labels)
        lam = mix.lam.to(logits.dtype)
        return (lam * F.cross_entropy(logits, labels, reduction="none")
                + (1 - lam) * F.cross_entropy(logits, labels[mix.partner], reduction="none")).mean()

    @torch.no_grad()
    def validate(self, model, sampler, pairs, shifts, batch_size):
        total = 0.0
        for lo in range(0, len(pairs), batch_size):
            chunk = pairs[lo : lo + batch_size]
            x = sampler.gather(chunk, None if shifts is None else shifts[lo : lo + batch_size])
            logits = model(x.to(_device_of(model)))
            retrieved = self.vocabulary[logits.argmax(dim=1).cpu().numpy()]
            cos = patch_cosine(self.targets.batch(retrieved), self.targets.batch(chunk[:, 1]))
            total += cos.mean(dim=1).sum().item()
        return total / max(len(pairs), 1)


class ContrastiveTask:
    """Align windows and frames in the DINA joint space (symmetric InfoNCE, learnable temperature).

    Validation scores the same thing as :class:`PatchTask`, so the budget rule's early stopping
    compares like with like: the mean per-patch cosine between the true patches and the
    *joint-space soft retrieval* over the training frames, ``Σ_f softmax(s · cos(n, i_f)) · patches_f``.
    """

    def __init__(self, targets: PatchTargets, vocabulary: np.ndarray):
        self.targets = targets
        self.vocabulary = np.asarray(vocabulary, dtype=np.int64)

    def fingerprint(self) -> str:
        return f"{self.targets.info.space_id}:{self.targets.stimulus_hash}:contrastive"

    def loss(self, model, x, mask, pairs, mix=None):
        if mix is not None:
            raise ValueError("mixup does not apply to the contrastive objective (a mixed window has no one frame)")
        frames = pairs[:, 1]
        _, pooled = model.body(_apply_unit_mask(x, mask))
        frame_ids = torch.from_numpy(np.asarray(frames)).to(x.device)
        return model.towers.loss(pooled, self.targets.batch(frames).to(x.device), frame_ids)

    @torch.no_grad()
    def validate(self, model, sampler, pairs, shifts, batch_size):
        device = _device_of(model)
        vocab = soft_retrieval_bank(model, self.targets, self.vocabulary, batch_size)
        total = 0.0
        for lo in range(0, len(pairs), batch_size):
            chunk = pairs[lo : lo + batch_size]
            x = sampler.gather(chunk, None if shifts is None else shifts[lo : lo + batch_size])
            pred = soft_retrieve(model, model(x.to(device)).cpu(), vocab)
            total += patch_cosine(pred, self.targets.batch(chunk[:, 1])).mean(dim=1).sum().item()
        return total / max(len(pairs), 1)


@torch.no_grad()
def soft_retrieval_bank(model, targets: PatchTargets, frames: np.ndarray, batch_size: int = 256):
    """(image embeddings (F, d), flattened patches (F, P·D)) of ``frames`` for :func:`soft_retrieve`."""
    device = _device_of(model)
    patches = targets.batch(frames)
    embeddings = torch.cat([model.embed_frames(patches[lo : lo + batch_size].to(device)).cpu()
                            for lo in range(0, len(frames), batch_size)])
    return embeddings, patches.reshape(len(frames), -1)


def soft_retrieve(model, neural: torch.Tensor, bank) -> torch.Tensor:
    """Joint-space soft retrieval: (B, d) neural embeddings → (B, P, D) similarity-weighted mix of
    the bank frames' patches, with the model's learned temperature."""
    embeddings, flat = bank
    weights = (model.towers.scale().cpu() * neural @ embeddings.T).softmax(dim=1)
    return (weights @ flat).view(len(neural), *model.config_shape)


# ---------------------------------------------------------------------------------------------
# State, schedule, resume
# ---------------------------------------------------------------------------------------------


@dataclass
class TrainState:
    """Everything besides tensors that a resumed run needs."""

    step: int = 0  # optimizer steps taken
    epoch: int = 0  # epochs finished
    position: int = 0  # batches taken in the current epoch
    best_metric: float = -math.inf
    best_step: int = 0
    best_epoch: int = 0
    bad_validations: int = 0  # validations since the last improvement (early stopping)
    seconds: float = 0.0  # training wall time so far, across restarts
    loss_sum: float = 0.0  # training loss summed since the last validation
    loss_count: int = 0
    stopped: str = ""  # why training ended ("" while running)
    history: list[dict] = field(default_factory=list)


@dataclass
class TrainResult:
    """What :func:`train_encoder` returns. ``history``: one dict per validation (see
    ``LOG_COLUMNS``; ``seconds`` includes validation, ``windows_per_s`` counts training only).
    ``steps``: optimizer steps taken; ``stopped``: ``"early_stopping"``, ``"max_steps"``,
    ``"max_epochs"`` or ``"time_budget"``."""

    best_metric: float
    best_epoch: int
    epochs: int
    seconds: float
    stopped: str
    history: list[dict]
    steps: int = 0
    best_step: int = 0


LOG_COLUMNS = ("step", "epoch", "train_loss", "val_metric", "lr", "seconds", "windows_per_s", "best")


@dataclass(frozen=True)
class Plan:
    """How many windows and steps the run spans (derived from the config and the data)."""

    n_samples: int  # training windows available: pairs × windows per pair
    per_pair: int  # windows per (repeat, frame) pair: bins_per_frame with bin sampling, else 1
    steps_per_epoch: int
    total_steps: int  # min(max_steps, max_epochs × steps_per_epoch)

    @classmethod
    def of(cls, c: EncoderConfig, n_pairs: int, bins_per_frame: int) -> Plan:
        per_pair = bins_per_frame if c.sampling == "bin" else 1
        n_samples = n_pairs * per_pair
        windows = min(c.windows_per_epoch or n_samples, n_samples)
        steps_per_epoch = max(windows // c.batch_size, 1)  # drop the last partial batch (BatchNorm)
        total = c.max_epochs * steps_per_epoch
        return cls(n_samples, per_pair, steps_per_epoch, min(total, c.max_steps) if c.max_steps else total)


def cosine_lr(progress: float, base_lr: float) -> float:
    """Cosine decay from ``base_lr`` (progress 0) to 0 (progress 1); no warm-up, as in the paper."""
    return 0.5 * base_lr * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def learning_rate(c: EncoderConfig, state: TrainState, plan: Plan) -> float:
    """``"epoch"``: ``CosineAnnealingLR(T_max=max_epochs)`` stepped after each epoch (released);
    ``"step"``: cosine over the planned optimizer steps."""
    if c.lr_schedule == "epoch":
        return cosine_lr(state.epoch / c.max_epochs, c.lr)
    return cosine_lr(state.step / max(plan.total_steps, 1), c.lr)


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _trainable_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict without what never changes: the frozen basis buffers and parameters that do
    not require gradients (a frozen language-model backbone), so copies are not waste."""
    return {
        k: v.detach().clone() for k, v in model.state_dict(keep_vars=True).items()
        if ".basis." not in k and not (isinstance(v, torch.nn.Parameter) and not v.requires_grad)
    }


def save_resume(
    folder: Path, model, optimizer, best: dict[str, torch.Tensor], data_rng: torch.Generator,
    order: torch.Tensor, state: TrainState, fingerprint: dict,
) -> None:
    """Write the resume checkpoint of the current step; the folder is replaced atomically."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best.items()})
    optim = optimizer.state_dict()
    for index, slots in optim["state"].items():
        tensors.update({f"optim.{index}.{name}": t for name, t in slots.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = data_rng.get_state()
    tensors["data.order"] = order
    meta = {"fingerprint": fingerprint, "state": asdict(state), "param_groups": optim["param_groups"]}
    with atomic_dir(folder) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp / RESUME_TENSORS))
        atomic_write_json(tmp / RESUME_JSON, meta)


def load_resume(
    folder: Path, model, optimizer, data_rng: torch.Generator, fingerprint: dict, *, state_type: type = TrainState,
) -> tuple[TrainState, dict[str, torch.Tensor], torch.Tensor]:
    """Restore model, optimizer and RNGs from ``folder``; return the state (a ``state_type``, the
    dataclass that was saved: :class:`TrainState` here, the multi-session loop's own there), the
    best weights and the current epoch's window order."""
    try:
        meta = json.loads((folder / RESUME_JSON).read_text())
        tensors = load_file(str(folder / RESUME_TENSORS))
        state = state_type(**meta["state"])
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InputError(folder, f"unreadable resume checkpoint ({exc}); delete the folder to start over") from None
    if meta["fingerprint"] != fingerprint:
        changed = sorted(k for k in fingerprint if meta["fingerprint"].get(k) != fingerprint[k])
        raise InputError(
            folder, f"resume checkpoint was written by a different run (differs in: {', '.join(changed)}); "
            "delete the folder to start over"
        )
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    slots: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            slots.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": slots, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    data_rng.set_state(tensors["rng.data"])
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    return state, best, tensors["data.order"]


def write_log(path: Path, history: list[dict]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------


def train_encoder(
    model: torch.nn.Module,
    task: Task,
    dataset: NeuralDataset,
    train_pairs: np.ndarray,
    val_pairs: np.ndarray,
    config: EncoderConfig,
    *,
    seed: int = 0,
    resume_dir: str | Path | None = None,
    log_path: str | Path | None = None,
    on_validation: Callable[[TrainState], None] | None = None,
) -> TrainResult:
    """Train ``model`` in place and load the weights of its best validation.

    Parameters
    ----------
    model : a :class:`NeurratorPatches` or :class:`NeurratorRetrieval`.
    task : :class:`PatchTask` or :class:`RetrievalTask` (loss and validation metric).
    dataset : windows are cut from it as views.
    train_pairs, val_pairs : (n, 2) int64 ``(repeat, frame)`` pairs.
    config : a resolved :class:`EncoderConfig` (optimiser, schedule, augmentation, budget).
    seed : seeds dropout (global torch RNG) and the data order/augmentation (own generator).
    resume_dir : if given, a resume checkpoint is written here at every validation and, if one
        is already there, training continues from it.
    log_path : CSV of the training loss, validation metric, learning rate and seconds per validation.
    on_validation : called with the state after each validation's checkpoint is written.
    """
    c = config.resolved()
    with thread_limit(c.num_threads):
        return _train(model, task, dataset, train_pairs, val_pairs, c, seed, resume_dir, log_path, on_validation)


def _train(model, task, dataset, train_pairs, val_pairs, c: EncoderConfig, seed, resume_dir, log_path, on_validation):
    train_pairs = np.asarray(train_pairs, dtype=np.int64).reshape(-1, 2)
    val_pairs = np.asarray(val_pairs, dtype=np.int64).reshape(-1, 2)
    val_shifts = None
    if c.validation == "released":  # every bin's window of the validation repeats
        val_pairs, val_shifts = expand_to_bins(val_pairs, dataset.bins_per_frame)
    sampler = WindowSampler(dataset)
    n_units = dataset.n_units
    device = torch.device(c.device)
    model.to(device)  # before the optimizer exists, so its state lives on the same device
    plan = Plan.of(c, len(train_pairs), dataset.bins_per_frame)
    offsets = bin_offsets(dataset.bins_per_frame) if plan.per_pair > 1 else np.zeros(1, dtype=np.int64)

    torch.manual_seed(seed)
    data_rng = torch.Generator().manual_seed(seed + 1)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=c.lr, weight_decay=c.weight_decay)
    subset_fraction = c.subset_fraction if c.subset_robust else 0.0
    groups = None
    if c.subset_groups and "area" in dataset.units:
        groups = torch.from_numpy(np.unique(dataset.units["area"].astype(str).to_numpy(), return_inverse=True)[1])

    fingerprint = {
        "seed": seed, "n_units": n_units, "n_train": len(train_pairs), "n_val": len(val_pairs),
        "data": sha256_array(np.concatenate([dataset.zscore.mean, dataset.zscore.std])),
        "split": sha256_array(np.concatenate([train_pairs, val_pairs])),
        "targets": task.fingerprint(),
        "model": getattr(getattr(model, "config", None), "to_dict", dict)(),
        "training": c.model_dump(mode="json", exclude={"progress", "num_threads", "eval_batch_size", "device"}),
    }
    state, best, order = TrainState(), _trainable_state(model), torch.empty(0, dtype=torch.int64)
    resume_dir = Path(resume_dir) if resume_dir is not None else None
    if resume_dir is not None and (resume_dir / RESUME_JSON).is_file():
        state, best, order = load_resume(resume_dir, model, optimizer, data_rng, fingerprint)

    bar = tqdm(total=plan.total_steps, initial=state.step, disable=not c.progress, leave=False, unit="step")
    t0 = time.perf_counter()
    windows_since = 0
    while not state.stopped:
        if state.position == 0:  # a new epoch: draw its window order
            order = torch.randperm(plan.n_samples, generator=data_rng)[: plan.steps_per_epoch * c.batch_size]
        model.train()
        lr = learning_rate(c, state, plan)
        for group in optimizer.param_groups:
            group["lr"] = lr
        index = order[state.position * c.batch_size : (state.position + 1) * c.batch_size].numpy()
        batch = train_pairs[index // plan.per_pair]
        jitter = torch.randint(-c.jitter_bins, c.jitter_bins + 1, (len(batch),), generator=data_rng).numpy()
        mask = augmentation_mask(len(batch), n_units, unit_dropout=c.unit_dropout,
                                 subset_fraction=subset_fraction, generator=data_rng, groups=groups)
        x = sampler.gather(batch, offsets[index % plan.per_pair] + jitter).to(device, non_blocking=True)
        mix = None
        if c.mixup:  # mix windows (absent units already zeroed) and their targets
            lam = torch.distributions.Beta(c.mixup, c.mixup).sample((len(batch),))
            mix = Mix(torch.randperm(len(batch), generator=data_rng), lam.to(device))
            x, mask = mix.apply(_apply_unit_mask(x, mask.to(device))), None
        mask = None if mask is None else mask.to(device)
        loss = task.loss(model, x, mask, batch) if mix is None else task.loss(model, x, mask, batch, mix)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, c.grad_clip)
        optimizer.step()
        state.step += 1
        state.position += 1
        state.loss_sum += loss.item()
        state.loss_count += 1
        windows_since += len(batch)
        bar.update(1)
        bar.set_postfix(loss=f"{loss.item():.4f}", epoch=state.epoch)
        if state.position == plan.steps_per_epoch:
            state.epoch, state.position = state.epoch + 1, 0
        due = state.step % c.val_every == 0 if c.val_every else state.position == 0
        if not (due or state.step >= plan.total_steps):
            continue

        # ---- validation, early stopping, log, resume checkpoint ---------------------------------
        train_seconds = time.perf_counter() - t0
        model.eval()
        metric = task.validate(model, sampler, val_pairs, val_shifts, c.eval_batch_size)
        seconds = time.perf_counter() - t0
        state.seconds += seconds
        improved = metric > state.best_metric
        if improved:
            state.best_metric, state.best_step, state.best_epoch = metric, state.step, state.epoch
            state.bad_validations = 0
            best = _trainable_state(model)
        else:
            state.bad_validations += 1
        state.history.append({
            "step": state.step, "epoch": state.epoch, "train_loss": state.loss_sum / max(state.loss_count, 1),
            "val_metric": metric, "lr": lr, "seconds": round(seconds, 3),
            "windows_per_s": round(windows_since / max(train_seconds, 1e-9), 1), "best": improved,
        })
        if c.progress:
            tqdm.write(f"step {state.step:5d}  epoch {state.epoch:3d}  loss {state.history[-1]['train_loss']:.4f}  "
                       f"val {metric:.4f}{' *' if improved else '  '}  {seconds:.1f} s")
        state.loss_sum, state.loss_count = 0.0, 0
        if state.bad_validations >= c.patience:
            state.stopped = "early_stopping"
        elif state.step >= plan.total_steps:
            state.stopped = "max_steps" if c.max_steps and plan.total_steps == c.max_steps else "max_epochs"
        elif c.max_minutes and state.seconds >= c.max_minutes * 60:
            state.stopped = "time_budget"
        if log_path is not None:
            write_log(Path(log_path), state.history)
        if resume_dir is not None:
            save_resume(resume_dir, model, optimizer, best, data_rng, order, state, fingerprint)
        if on_validation is not None:
            on_validation(state)
        t0, windows_since = time.perf_counter(), 0
    bar.close()

    model.load_state_dict(best, strict=False)  # frozen basis buffers are already in place
    model.eval()
    return TrainResult(state.best_metric, state.best_epoch, state.epoch, state.seconds, state.stopped, state.history,
                       steps=state.step, best_step=state.best_step)
