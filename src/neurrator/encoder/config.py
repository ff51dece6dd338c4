"""Config section for the encoder architecture and its training.

Two presets, one switch (``--set encoder.preset=paper``):

- ``"demo"`` (default): the CPU profile the embedded demo runs in a few minutes on 2 cores —
  the fast PCA-basis head, a Linear unit bottleneck in front of the convolutions, a narrower
  transformer (d_model 128), lr 1e-3, 2,048 windows per epoch, at most 16 epochs, a 3.5-minute
  training budget (the cosine schedule shrinks to the epochs that fit) and one CPU thread.
- ``"paper"``: the published settings (paper A.2, released code) — the learned-patch-query head
  with 576 queries, no bottleneck, d_model 384 / 8 heads / FF 768, full epochs, up to 60 epochs.

Fields left ``None`` take the preset's value (see :data:`PRESETS`); any field set explicitly
wins over the preset. :meth:`EncoderConfig.resolved` returns the config with every field filled.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: Values of the preset-dependent fields. ``unit_bottleneck=0`` and ``max_minutes=0`` mean
#: "none"; ``windows_per_epoch=0`` means "every training window once per epoch".
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
        "max_epochs": 60,
        "windows_per_epoch": 0,
        "max_minutes": 0.0,
        "lr": 3e-4,
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
        "max_epochs": 16,
        "windows_per_epoch": 2048,
        "max_minutes": 3.5,
        "lr": 1e-3,
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
    memory: Literal["pooled", "sequence"] = Field(
        "pooled",
        description="what patch queries attend to: the pooled vector (paper text) or the temporal "
        "sequence (released code). Pooled is the default: cheaper, and it scored slightly higher at equal "
        "wall time in benchmarks/bench_encoder_heads.py (a small, noisy difference)",
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
    mse_weight: float = 0.5
    cosine_weight: float = 0.5
    infonce_weight: float = Field(0.0, ge=0.0, description="optional InfoNCE on patch-averaged embeddings")
    infonce_tau: float = Field(0.07, gt=0.0)

    # ---- optimisation -------------------------------------------------------------------------
    lr: float | None = Field(None, gt=0.0, description="peak learning rate (paper 3e-4; demo 1e-3: fewer steps)")
    weight_decay: float = Field(1e-3, ge=0.0)
    grad_clip: float = Field(1.0, gt=0.0)
    batch_size: int = Field(64, ge=2)
    max_epochs: int | None = Field(None, ge=1)
    patience: int = Field(12, ge=1, description="early stopping on validation patch cosine")
    windows_per_epoch: int | None = Field(None, ge=0, description="random training windows per epoch; 0 = all")
    max_minutes: float | None = Field(
        None, ge=0.0, description="training wall-time budget; the cosine schedule shrinks to the epochs that "
        "fit (so the epoch count depends on the machine); 0 = none",
    )

    # ---- augmentation ---------------------------------------------------------------------------
    jitter_bins: int = Field(2, ge=0, description="± shift of each training window, in bins")
    unit_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="fraction of units zeroed per window")
    subset_robust: bool = Field(
        True, description="also train on random unit subsets (1 unit … all, log-uniform keep fraction). "
        "On by default: in benchmarks/bench_subset_robust.py it raised test cosine by 0.01-0.02 for queries "
        "of 1-100 units and cost ~0.007 with every unit",
    )
    subset_fraction: float = Field(
        0.25, ge=0.0, le=1.0, description="share of windows given a random subset (0.5 cost ~0.012 at all units)"
    )

    # ---- execution --------------------------------------------------------------------------------
    eval_batch_size: int = Field(256, ge=1)
    device: str = Field("cpu", description='torch device for training and inference, e.g. "cuda" or "cuda:1"')
    num_threads: int | None = Field(
        None, ge=0, description="torch CPU threads; 0 = torch default. The demo uses 1: on a shared 2-core "
        "machine two spinning thread pools were several times slower (bench_encoder_throughput.py)",
    )
    progress: bool = True

    def resolved(self) -> EncoderConfig:
        """A copy with every preset-dependent field filled in."""
        filled = {k: v for k, v in PRESETS[self.preset].items() if getattr(self, k) is None}
        return self.model_copy(update=filled)
