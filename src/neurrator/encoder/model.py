"""Neurrator encoder models: a 20-bin spike window → the patch tensor of the frame shown.

Written in the explicit style of a Hugging Face model file: one config dataclass, then each
building block as its own module, then the two full models.

Architecture (paper §3.1, A.2; released code ``encoder_patches.py``)::

    spikes (B, T=20, n_units)                     z-scored, absent units = 0
      └─ dropout                                  (released code drops input entries too)
      └─ [optional unit bottleneck: Linear n_units → bottleneck]     not in the paper; CPU option
      └─ multi-scale 1-D conv, kernels 3/7/15 × 128 ch, GELU, BatchNorm
      └─ Linear → d_model 384, GELU, LayerNorm
      └─ 2-layer temporal transformer (8 heads, FF 768, dropout 0.2)  → sequence (B, T, D)
      └─ [attention-weighted temporal pooling → pooled (B, D)]         only where a head uses it
      └─ head:
         "patches" (faithful): learned queries, one per patch, cross-attend to a memory, then a
             2-layer patch transformer and LayerNorm + Linear to the target dim.
             memory="sequence" (default, released code): the whole temporal sequence; there
             is no pooling layer, and the model has 12,493,568 parameters at 2,000 units ×
             576×1024, as released. memory="pooled" (paper text; non-default): the pooled vector.
         "basis" (fast): pooled → MLP → whitened coefficients on a PCA basis of the training
             targets (:class:`PatchBasis`), reconstructed to the full patch grid.

With ``memory="pooled"`` the cross-attention has one key, so its softmax is 1 and every query
receives the same value vector; the queries differ only through their own embedding and the
patch transformer, and the query/key projections get exactly zero gradient.

The body's pooled output: an attention-pooling layer where the head reads it (basis head, pooled
memory, retrieval classifier), else the parameter-free mean over time (nothing in the model reads
it then; other models built on the body may).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class EncoderModelConfig:
    """Shapes and hyper-parameters of one encoder model (stored in every checkpoint).

    Attributes
    ----------
    n_units : input units (columns of the spike window).
    n_patches, patch_dim : target shape, e.g. 576 × 1024 for CLIP ViT-L/14-336.
    window : time bins per window (20 at 120 Hz).
    conv_kernels, conv_channels : multi-scale front end (3/7/15, 128 each).
    unit_bottleneck : if set, a Linear n_units → this many channels before the convolutions.
        Not in the paper; it makes the front end cost independent of the unit count.
    d_model, n_heads, ff_dim, temporal_layers, patch_layers, dropout : transformer sizes.
    head : ``"patches"`` (faithful, learned patch queries) or ``"basis"`` (fast PCA head).
    memory : what the patch queries attend to: ``"sequence"`` (released code, default) or
        ``"pooled"`` (paper text). Ignored by the basis head.
    basis_rank : number of PCA components of the basis head.
    basis_hidden : hidden width of the basis head's MLP.
    n_classes : vocabulary size of the retrieval model (0 for patch models).
    """

    n_units: int
    n_patches: int = 576
    patch_dim: int = 1024
    window: int = 20
    conv_kernels: tuple[int, ...] = (3, 7, 15)
    conv_channels: int = 128
    unit_bottleneck: int | None = None
    d_model: int = 384
    n_heads: int = 8
    ff_dim: int = 768
    temporal_layers: int = 2
    patch_layers: int = 2
    dropout: float = 0.2
    head: Literal["patches", "basis"] = "patches"
    memory: Literal["sequence", "pooled"] = "sequence"
    basis_rank: int = 128
    basis_hidden: int = 512
    n_classes: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def attention_pool(self) -> bool:
        """Whether the body needs its attention-pooling layer: only heads that read the pooled
        vector do (the released patch encoder has none)."""
        return self.head == "basis" or self.memory == "pooled" or self.n_classes > 0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["conv_kernels"] = list(self.conv_kernels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> EncoderModelConfig:
        return cls(**{**d, "conv_kernels": tuple(d["conv_kernels"])})


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


class MultiScaleConv(nn.Module):
    """Parallel 1-D convolutions over time, one per kernel size, concatenated on channels.

    Input (B, C_in, T) → output (B, len(kernels) * channels, T).
    """

    def __init__(self, in_channels: int, channels: int, kernels: tuple[int, ...]):
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(in_channels, channels, k, padding=k // 2),
                nn.GELU(),
                nn.BatchNorm1d(channels),
            )
            for k in kernels
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class AttentionPooling(nn.Module):
    """Softmax-weighted average over time with a learned scoring vector: (B, T, D) → (B, D)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.score = nn.Linear(d_model, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.score(x).softmax(dim=1)  # (B, T, 1)
        return (x * weights).sum(dim=1)


def _transformer(cfg: EncoderModelConfig, n_layers: int) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(
        d_model=cfg.d_model,
        nhead=cfg.n_heads,
        dim_feedforward=cfg.ff_dim,
        dropout=cfg.dropout,
        activation="gelu",
        batch_first=True,
    )
    return nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)


class SpikeWindowEncoder(nn.Module):
    """The shared body: spike window → temporal sequence and its pooled summary.

    Input (B, T, n_units); returns ``(sequence (B, T, D), pooled (B, D))``. ``pooled`` is
    attention-weighted when ``cfg.attention_pool`` (the model has that layer), else the mean over
    time.
    """

    def __init__(self, cfg: EncoderModelConfig):
        super().__init__()
        self.input_dropout = nn.Dropout(cfg.dropout)
        conv_in = cfg.n_units
        if cfg.unit_bottleneck:
            self.unit_bottleneck = nn.Linear(cfg.n_units, cfg.unit_bottleneck)
            conv_in = cfg.unit_bottleneck
        else:
            self.unit_bottleneck = None
        self.conv = MultiScaleConv(conv_in, cfg.conv_channels, cfg.conv_kernels)
        self.input_proj = nn.Sequential(
            nn.Linear(cfg.conv_channels * len(cfg.conv_kernels), cfg.d_model),
            nn.GELU(),
            nn.LayerNorm(cfg.d_model),
            nn.Dropout(cfg.dropout),
        )
        self.temporal = _transformer(cfg, cfg.temporal_layers)
        self.pool = AttentionPooling(cfg.d_model) if cfg.attention_pool else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.input_dropout(x)
        if self.unit_bottleneck is not None:
            x = self.unit_bottleneck(x)
        x = self.conv(x.transpose(1, 2)).transpose(1, 2)  # (B, T, channels)
        sequence = self.temporal(self.input_proj(x))
        return sequence, self.pool(sequence) if self.pool is not None else sequence.mean(dim=1)


class PatchQueryHead(nn.Module):
    """Faithful head: one learned query per patch cross-attends to the memory, then a patch
    transformer and LayerNorm + Linear to the target dim. Output (B, n_patches, patch_dim)."""

    def __init__(self, cfg: EncoderModelConfig):
        super().__init__()
        self.memory = cfg.memory
        self.patch_queries = nn.Parameter(torch.randn(cfg.n_patches, cfg.d_model) * 0.02)
        self.cross_attn = nn.MultiheadAttention(cfg.d_model, cfg.n_heads, dropout=cfg.dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(cfg.d_model)
        self.patch_transformer = _transformer(cfg, cfg.patch_layers)
        self.out_proj = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, cfg.patch_dim))

    def forward(self, sequence: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        memory = pooled.unsqueeze(1) if self.memory == "pooled" else sequence
        queries = self.patch_queries.unsqueeze(0).expand(sequence.shape[0], -1, -1)
        attended, _ = self.cross_attn(queries, memory, memory, need_weights=False)
        patches = self.patch_transformer(self.cross_norm(queries + attended))
        return self.out_proj(patches)


class PatchBasis(nn.Module):
    """A fixed linear basis of the flattened patch tensor, fitted to training targets only.

    ``reconstruct(z) = mean + z @ (scale[:, None] * components)`` with ``z`` (B, rank) whitened
    coefficients (unit variance on the training targets). Buffers, not parameters: the basis is
    frozen, so it costs no optimizer state.

    Buffers: ``mean`` (n_patches * patch_dim,), ``components`` (rank, n_patches * patch_dim)
    orthonormal rows, ``scale`` (rank,) standard deviation of each coefficient.
    """

    def __init__(self, rank: int, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("components", torch.zeros(rank, n_features))
        self.register_buffer("scale", torch.ones(rank))

    def set(self, mean: torch.Tensor, components: torch.Tensor, scale: torch.Tensor) -> None:
        self.mean.copy_(mean)
        self.components.copy_(components)
        self.scale.copy_(scale)

    def reconstruct(self, z: torch.Tensor) -> torch.Tensor:
        return self.mean + (z * self.scale) @ self.components

    def project(self, flat: torch.Tensor) -> torch.Tensor:
        """Whitened coefficients of flattened targets (B, n_features) → (B, rank)."""
        return ((flat - self.mean) @ self.components.T) / self.scale


class BasisHead(nn.Module):
    """Fast head: pooled (B, D) → MLP → whitened basis coefficients → (B, n_patches, patch_dim).

    Its cost is one (rank × n_patches·patch_dim) product per window instead of 576 tokens
    through a transformer.
    """

    def __init__(self, cfg: EncoderModelConfig):
        super().__init__()
        self.n_patches, self.patch_dim = cfg.n_patches, cfg.patch_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(cfg.d_model),
            nn.Linear(cfg.d_model, cfg.basis_hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.basis_hidden, cfg.basis_rank),
        )
        self.basis = PatchBasis(cfg.basis_rank, cfg.n_patches * cfg.patch_dim)

    def forward(self, sequence: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        flat = self.basis.reconstruct(self.mlp(pooled))
        return flat.view(-1, self.n_patches, self.patch_dim)


# ---------------------------------------------------------------------------------------------
# Full models
# ---------------------------------------------------------------------------------------------


def _apply_unit_mask(x: torch.Tensor, unit_mask: torch.Tensor | None) -> torch.Tensor:
    """Zero absent units (z-score 0 = the unit's training mean). ``unit_mask``: (n_units,) or
    (B, n_units), bool or float."""
    if unit_mask is None:
        return x
    mask = unit_mask.to(x.dtype)
    return x * (mask.unsqueeze(-2) if mask.dim() == 2 else mask)


class NeurratorPatches(nn.Module):
    """Spike window (B, T, n_units) → predicted patch tensor (B, n_patches, patch_dim).

    >>> model = NeurratorPatches(EncoderModelConfig(n_units=2000))   # doctest: +SKIP
    >>> model.num_parameters()                                       # 12,493,568, as released
    """

    def __init__(self, config: EncoderModelConfig):
        super().__init__()
        self.config = config
        self.body = SpikeWindowEncoder(config)
        self.head = BasisHead(config) if config.head == "basis" else PatchQueryHead(config)

    def forward(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        sequence, pooled = self.body(_apply_unit_mask(x, unit_mask))
        return self.head(sequence, pooled)

    def num_parameters(self) -> int:
        """Trainable parameters (the frozen basis buffers are not counted)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class NeurratorRetrieval(nn.Module):
    """Retrieval variant (paper A.5/A.6; released ``encoder_retrieval.py``): the same body, then
    an attention-pooled classifier over the training-image vocabulary.

    Input (B, T, n_units) → logits (B, n_classes). At inference the arg-max training image's real
    patches are handed to the narrator, which keeps its input on the vision-space manifold.
    """

    def __init__(self, config: EncoderModelConfig):
        super().__init__()
        if config.n_classes < 2:
            raise ValueError("the retrieval model needs n_classes >= 2")
        self.config = config
        self.body = SpikeWindowEncoder(config)
        self.classifier = nn.Sequential(nn.LayerNorm(config.d_model), nn.Linear(config.d_model, config.n_classes))

    def forward(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        _, pooled = self.body(_apply_unit_mask(x, unit_mask))
        return self.classifier(pooled)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------------


def patch_cosine(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-patch cosine similarity: (B, P, D), (B, P, D) → (B, P)."""
    return F.cosine_similarity(pred, target, dim=-1, eps=1e-8)


def info_nce(pred: torch.Tensor, target: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE on patch-averaged, L2-normalised embeddings; the other windows of the
    batch are the negatives. Discourages collapse onto the mean frame."""
    p = F.normalize(pred.mean(dim=1), dim=-1)
    t = F.normalize(target.mean(dim=1), dim=-1)
    logits = p @ t.T / tau
    labels = torch.arange(p.shape[0], device=p.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))


def patch_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    mse_weight: float = 0.5,
    cosine_weight: float = 0.5,
    infonce_weight: float = 0.0,
    infonce_tau: float = 0.07,
) -> torch.Tensor:
    """``mse_weight · MSE + cosine_weight · (1 − mean per-patch cosine) [+ infonce_weight · InfoNCE]``.

    pred, target : (B, n_patches, patch_dim).
    """
    loss = mse_weight * F.mse_loss(pred, target) + cosine_weight * (1.0 - patch_cosine(pred, target).mean())
    if infonce_weight:
        loss = loss + infonce_weight * info_nce(pred, target, infonce_tau)
    return loss
