"""Config section for the encoder architecture and its training.

Two presets, one switch (``--set encoder.preset=paper``):

- ``"demo"`` (default): the CPU profile of the embedded demo — the fast PCA-basis head, a Linear
  unit bottleneck in front of the convolutions, a narrower transformer (d_model 128), lr 1e-3,
  subset-robust training, a cap of optimizer steps with validation every ``val_every`` steps and
  one CPU thread. No wall-time cap: the result does not depend on the machine.
- ``"paper"``: the released encoder and recipe (github arnaumarin/neurrator,
  ``encoder_patches.py`` / ``scripts/train_patches.py``), see below.

What ``preset="paper"`` is, and where the paper's *text* says otherwise
---------------------------------------------------------------------------
=====================  ===============================================  ==========================
                       released code (what ``paper`` does)              paper text (A.2)
=====================  ===============================================  ==========================
patch queries attend   the whole 20-step temporal sequence              "the pooled representation"
temporal pooling       none in the patch path                           attention-weighted pooling
parameters             12,493,568 at 2,000 units × 576×1024             "~12 M"
training windows       one per 120 Hz bin (4 per frame), ±2-bin jitter  not stated
                       around the bin, 10 % unit dropout
learning rate          cosine over ``max_epochs``, stepped per epoch    "a cosine schedule"
validation             the last 2 of the 18 non-test repeats, every     "a held-out split of the
                       bin's window, mean per-patch cosine              training repeats"
subset training        none                                             none
=====================  ===============================================  ==========================

Two differences remain and are data-layout, not recipe: windows here never cross a repeat
boundary (each repeat is zero-padded; the released code slides over concatenated repeats), and a
window at the edge of a repeat whose jitter would leave the padded range is clipped to it.
``memory="pooled"`` (the text's description) stays available as a documented non-default option;
it adds the attention-pooling layer (385 parameters at d_model 384) and, with one key, its
cross-attention softmax is 1, so the 295,680 query/key weights get no gradient.

Fields left ``None`` take the preset's value (see :data:`PRESETS`); any field set explicitly
wins over the preset. :meth:`EncoderConfig.resolved` returns the config with every field filled.

Budget
------
Training is capped by optimizer steps (``max_steps``) and epochs (``max_epochs``), validated
every ``val_every`` steps (``0``: once per epoch) and stopped after ``patience`` validations
without improvement — the benchmark's one budget rule. ``max_minutes`` (off by default) is a
machine-dependent safety net only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Values of the preset-dependent fields. ``unit_bottleneck=0``, ``max_steps=0`` and
#: ``windows_per_epoch=0`` mean "none"/"all".
PRESETS: dict[str, dict[str, object]] = {
    "paper": {
        "head": "patches",
        "unit_bottleneck": 0,
        "conv_channels": 128,
        "d_model": 384,
        "n_heads": 8,
        "ff_dim": 768,
        "basis_rank": 128,
        "basis_hidden": 512,
        "lr": 3e-4,
        "max_epochs": 60,
        "max_steps": 0,
        "val_every": 0,
        "patience": 12,
        "lr_schedule": "epoch",
        "windows_per_epoch": 0,
        "validation": "released",
        "subset_robust": False,
        "num_threads": 0,
    },
    "demo": {
        "head": "basis",
        "unit_bottleneck": 128,
        "conv_channels": 64,
        "d_model": 128,
        "n_heads": 4,
        "ff_dim": 256,
        "basis_rank": 64,
        "basis_hidden": 256,
        "lr": 1e-3,
        "max_epochs": 60,
        "max_steps": 512,
        "val_every": 32,
        "patience": 12,
        "lr_schedule": "step",
        "windows_per_epoch": 0,
        "validation": "split",
        "subset_robust": True,
        "num_threads": 1,
    },
}


class EncoderConfig(BaseModel):
    """Options for the encoder architecture and its training (paper §3.1, A.2)."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["demo", "paper"] = "demo"

    # ---- architecture (None → preset) -----------------------------------------------------
    head: Literal["patches", "basis"] | None = Field(
        None, description="'patches': learned patch queries (paper); 'basis': fast PCA-basis head"
    )
    memory: Literal["sequence", "pooled"] = Field(
        "sequence",
        description="what patch queries attend to: the temporal sequence (released code, default) or an "
        "attention-pooled vector (paper text; adds a pooling layer and leaves the query/key weights without "
        "gradient)",
    )
    unit_bottleneck: int | None = Field(None, ge=0, description="Linear n_units → k before the convs; 0 = none")
    conv_kernels: tuple[int, ...] = (3, 7, 15)
    conv_channels: int | None = Field(None, ge=1)
    d_model: int | None = Field(None, ge=8)
    n_heads: int | None = Field(None, ge=1)
    ff_dim: int | None = Field(None, ge=8)
    temporal_layers: int = Field(2, ge=1)
    patch_layers: int = Field(2, ge=1)
    dropout: float = Field(0.2, ge=0.0, lt=1.0)
    basis_rank: int | None = Field(None, ge=1, description="PCA components of the fast head")
    basis_hidden: int | None = Field(None, ge=1)

    # ---- loss --------------------------------------------------------------------------------
    loss_space: Literal["patches", "whitened"] = Field(
        "patches", description="'patches': mse_weight · MSE + cosine_weight · (1 − cosine) on the patch tensors "
        "(paper); 'whitened': MSE of the basis head's whitened coefficients (each principal component weighs the "
        "same; basis head only)",
    )
    mse_weight: float = 0.5
    cosine_weight: float = 0.5
    infonce_weight: float = Field(0.0, ge=0.0, description="optional InfoNCE on patch-averaged embeddings")
    infonce_tau: float = Field(0.07, gt=0.0)

    # ---- receptive-field-aware local readout ---------------------------------------------------
    rf_units: int = Field(0, ge=0, description="add a local linear readout in which each patch reads only the units "
                          "whose receptive fields cover it (retinotopy estimated on training frames); this many units "
                          "per patch, 0 = off")
    rf_chunks: int = Field(2, ge=1, description="time chunks of the window the local readout reads (must divide it)")

    # ---- contrastive dual towers (DINA) -----------------------------------------------------------
    contrastive_dim: int = Field(128, ge=1, description="joint-space size of the DINA towers (NeurratorDINA, and the "
                                 "patch encoder's auxiliary loss)")
    contrastive_tau: float = Field(0.07, gt=0.0, description="initial temperature of the joint space (learnable)")
    contrastive_channels: int = Field(8, ge=1, description="image-tower channels per patch")
    contrastive_weight: float = Field(0.0, ge=0.0, description="weight of the DINA InfoNCE as an auxiliary loss of "
                                      "the patch encoder; 0 = off (the towers are not built)")

    # ---- optimisation and budget ------------------------------------------------------------------
    lr: float | None = Field(None, gt=0.0, description="peak learning rate (paper 3e-4; demo 1e-3: fewer steps)")
    weight_decay: float = Field(1e-3, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    batch_size: int = Field(64, ge=2)
    max_epochs: int | None = Field(None, ge=1)
    max_steps: int | None = Field(None, ge=0, description="cap on optimizer steps; 0 = none (epochs only)")
    val_every: int | None = Field(None, ge=0, description="validate every this many steps; 0 = once per epoch")
    patience: int | None = Field(None, ge=1, description="validations without improvement before stopping")
    lr_schedule: Literal["epoch", "step"] | None = Field(
        None, description="cosine decay to 0 stepped once per epoch over max_epochs (released) or per optimizer "
        "step over the planned steps",
    )
    windows_per_epoch: int | None = Field(None, ge=0, description="random training windows per epoch; 0 = all")
    validation: Literal["split", "released"] | None = Field(
        None, description="'split': the frame-centred windows of split.val (what every benchmark method early-stops "
        "on); 'released': the last 2 of the non-test repeats, every bin's window (released train_patches.py)",
    )
    max_minutes: float = Field(
        0.0, ge=0.0, description="optional wall-time safety net (stop at the next validation after it); makes "
        "results machine-dependent, so never on by default; 0 = none",
    )

    # ---- sampling and augmentation ------------------------------------------------------------------
    sampling: Literal["bin", "frame"] = Field(
        "bin", description="'bin': a training window centred on every 120 Hz bin (4 per frame, released); "
        "'frame': one window per (repeat, frame)",
    )
    jitter_bins: int = Field(2, ge=0, description="± shift of each training window around its centre bin")
    unit_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="fraction of units zeroed per window")
    mixup: float = Field(0.0, ge=0.0, description="mixup of windows and their targets, λ ~ Beta(a, a); 0 = off")
    subset_robust: bool | None = Field(
        None, description="also train on random unit subsets (1 unit … all, log-uniform keep fraction), so a "
        "query with one area is in distribution (benchmarks/bench_subset_robust.py). Demo on, paper off",
    )
    subset_fraction: float = Field(
        0.25, ge=0.0, le=1.0, description="share of windows given a random subset (0.5 cost ~0.012 at all units)"
    )
    subset_groups: bool = Field(
        False, description="half of the subset windows keep the units of one random area (as a query with one "
        "area does) instead of random units",
    )

    # ---- execution --------------------------------------------------------------------------------
    eval_batch_size: int = Field(256, ge=1)
    device: str = Field("cpu", description='torch device for training and inference, e.g. "cuda" or "cuda:1"')
    num_threads: int | None = Field(
        None, ge=0, description="torch CPU threads; 0 = torch default. The demo uses 1: on a shared 2-core "
        "machine two spinning thread pools were several times slower (bench_encoder_throughput.py)",
    )
    inference_dtype: Literal["float32", "bfloat16"] = Field(
        "float32", description="precision of batch inference: bfloat16 matrix products (float32 accumulation) are "
        "2-4x faster on CPUs with AVX-512 BF16 and change outputs by ~1e-2 relative; training is always float32",
    )
    progress: bool = True

    def resolved(self) -> EncoderConfig:
        """A copy with every preset-dependent field filled in."""
        filled = {k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None}
        return self.model_copy(update=filled)

    def max_shift_bins(self, bins_per_frame: int = 4) -> tuple[int, int]:
        """(lowest, highest) shift in bins of a training window relative to its frame-centred window.

        Bin sampling centres windows on the frame's 4 bins (offsets −2…+1 at 4 bins per frame)
        and jitter adds ±``jitter_bins``. Split guards against leakage must cover this range.
        """
        low, high = (-(bins_per_frame // 2), (bins_per_frame - 1) // 2) if self.sampling == "bin" else (0, 0)
        return low - self.jitter_bins, high + self.jitter_bins
