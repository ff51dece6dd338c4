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

import math

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
    contrastive_dim : joint-space size of the DINA towers (0: none). A patch model with it
        carries the towers for the auxiliary contrastive loss.
    contrastive_tau, contrastive_channels : initial temperature; image-tower channels per patch.
    rf_units : units per patch of the receptive-field-aware local readout added to the head's
        output (0: none); rf_chunks : time chunks of each window it reads.
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
    contrastive_dim: int = 0
    contrastive_tau: float = 0.07
    contrastive_channels: int = 8
    rf_units: int = 0
    rf_chunks: int = 2
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
        self.conv_channels_out = cfg.conv_channels * len(cfg.conv_kernels)
        self.input_proj = nn.Sequential(
            nn.Linear(cfg.conv_channels * len(cfg.conv_kernels), cfg.d_model),
            nn.GELU(),
            nn.LayerNorm(cfg.d_model),
            nn.Dropout(cfg.dropout),
        )
        self.temporal = _transformer(cfg, cfg.temporal_layers)
        self.pool = AttentionPooling(cfg.d_model) if cfg.attention_pool else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.trunk(self.front(x))

    def front(self, x: torch.Tensor) -> torch.Tensor:
        """Dropout, bottleneck and multi-scale convolutions: (B, T, n_units) → (B, T, channels).

        :mod:`neurrator.encoder.inference` computes the same thing with each 120 Hz bin
        projected once for all the windows that share it."""
        x = self.input_dropout(x)
        if self.unit_bottleneck is not None:
            x = self.unit_bottleneck(x)
        return self.conv(x.transpose(1, 2)).transpose(1, 2)

    def trunk(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Projection, temporal transformer and pooling: (B, T, channels) → (sequence, pooled)."""
        sequence = self.temporal(self.input_proj(features))
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
        return torch.addmm(self.mean, z * self.scale, self.components)  # one pass over the output

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
        flat = self.basis.reconstruct(self.coefficients(sequence, pooled))
        return flat.view(-1, self.n_patches, self.patch_dim)

    def coefficients(self, sequence: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """Whitened basis coefficients (B, rank)."""
        return self.mlp(pooled)


class LocalReadout(nn.Module):
    """Receptive-field-aware linear readout, added to the head's patches.

    Each patch listens only to the ``rf_units`` units whose receptive fields cover it (estimated
    on training frames, :func:`neurrator.encoder.retinotopy.estimate_retinotopy`), and each unit
    says the same thing wherever it is heard::

        patch_p = Σ_{u ∈ support(p)} a_pu · M_u r_u        r_u : (rf_chunks,) mean response per time chunk

    Parameters: ``unit_maps`` M (n_units, rf_chunks, patch_dim), starting at 0 (the readout
    starts silent), and ``weight`` a (n_patches, rf_units), starting at the retinotopy
    estimate. Buffer ``support`` (n_patches, rf_units) holds the unit indices.
    """

    def __init__(self, cfg: EncoderModelConfig):
        super().__init__()
        self.n_units, self.chunks = cfg.n_units, cfg.rf_chunks
        self.unit_maps = nn.Parameter(torch.zeros(cfg.n_units, cfg.rf_chunks, cfg.patch_dim))
        self.weight = nn.Parameter(torch.full((cfg.n_patches, cfg.rf_units), 1.0 / cfg.rf_units))
        self.register_buffer("support", torch.zeros(cfg.n_patches, cfg.rf_units, dtype=torch.long))

    def set_support(self, support: torch.Tensor, weight: torch.Tensor) -> None:
        self.support.copy_(support)
        with torch.no_grad():
            self.weight.copy_(weight)

    def chunk_means(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, T, n_units) → (B, rf_chunks, n_units) mean response per time chunk."""
        b, t, u = x.shape
        return x.reshape(b, self.chunks, t // self.chunks, u).mean(dim=2)

    def forward(self, chunks: torch.Tensor) -> torch.Tensor:
        """(B, rf_chunks, n_units) → (B, n_patches, patch_dim)."""
        b = chunks.shape[0]
        said = torch.einsum("bcu,ucd->ubd", chunks, self.unit_maps)  # (U, B, D): what each unit says
        n_patches, k = self.support.shape
        rows = torch.arange(n_patches, device=chunks.device).repeat_interleave(k)
        listen = torch.sparse_coo_tensor(torch.stack([rows, self.support.flatten()]), self.weight.flatten(),
                                         (n_patches, self.n_units), check_invariants=False)
        heard = torch.sparse.mm(listen, said.reshape(self.n_units, -1))  # (P, B·D)
        return heard.view(n_patches, b, -1).transpose(0, 1)


class ImageTower(nn.Module):
    """Patches (B, n_patches, dim) → (B, out_dim) L2-normalised image embeddings."""

    def __init__(self, n_patches: int, dim: int, out_dim: int, channels: int = 8, dropout: float = 0.1):
        super().__init__()
        self.per_patch = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, channels), nn.GELU())
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(n_patches * channels, out_dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        grid = self.per_patch(patches.float())  # (B, n_patches, channels): the layout is kept
        return F.normalize(self.project(self.dropout(grid.flatten(1))), dim=-1)


class ContrastiveHeads(nn.Module):
    """DINA's two projections into the joint space and its learnable temperature.

    ``neural(pooled)`` (B, d_model) → (B, contrastive_dim); ``image(patches)`` → (B,
    contrastive_dim); both L2-normalised. ``logit_scale`` starts at log(1/τ₀).
    """

    def __init__(self, cfg: EncoderModelConfig):
        super().__init__()
        out_dim = cfg.contrastive_dim
        self.neural_proj = nn.Sequential(nn.LayerNorm(cfg.d_model), nn.Linear(cfg.d_model, out_dim))
        self.image = ImageTower(cfg.n_patches, cfg.patch_dim, out_dim, channels=cfg.contrastive_channels,
                                dropout=cfg.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.contrastive_tau)))

    def neural(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.neural_proj(pooled), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=math.log(100.0)).exp()

    def loss(self, pooled: torch.Tensor, patches: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE between windows and the distinct frames of the batch.

        pooled : (B, d_model) body outputs; patches : (B, n_patches, dim) targets of the
        windows' frames; frames : (B,) frame ids (equal ids are the same frame).
        """
        unique, inverse = torch.unique(frames, return_inverse=True)
        first = torch.zeros(len(unique), dtype=torch.long, device=frames.device)
        first.scatter_(0, inverse, torch.arange(len(frames), device=frames.device))  # one window per frame
        return symmetric_info_nce(self.neural(pooled), self.image(patches[first]), inverse, self.scale())



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
        self.contrastive = ContrastiveHeads(config) if config.contrastive_dim else None
        self.local = LocalReadout(config) if config.rf_units else None

    def forward(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = _apply_unit_mask(x, unit_mask)
        return self.decode(*self.body(x), chunks=self.local.chunk_means(x) if self.local is not None else None)

    def decode(self, sequence: torch.Tensor, pooled: torch.Tensor, chunks: torch.Tensor | None = None) -> torch.Tensor:
        """The head on the body's outputs → (B, n_patches, patch_dim), plus the local readout of
        the windows' chunk means ``chunks`` (B, rf_chunks, n_units) when the model has one."""
        out = self.head(sequence, pooled)
        return out if self.local is None else out + self.local(chunks)

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
        return self.decode(*self.body(_apply_unit_mask(x, unit_mask)))

    def decode(self, sequence: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The classifier on the body's pooled output → (B, n_classes) logits."""
        return self.classifier(pooled)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


class NeurratorDualTower(nn.Module):
    """DINA-style dual towers (Wang et al. 2026, arXiv 2605.04309), adapted to spike windows and
    a frozen vision space:

    - neural tower: the body → pooled vector → LayerNorm + Linear → ``contrastive_dim``;
    - image tower: the frame's vision-space patches → per-patch LayerNorm + Linear + GELU
      (spatial layout kept) → flattened grid → Linear → ``contrastive_dim``. DINA trains a
      shallow CNN on pixels; reading the vision space instead lets any frame with targets,
      including frames never trained on, be embedded;
    - objective: symmetric InfoNCE with a learnable temperature (:func:`symmetric_info_nce`).

    :meth:`embed_windows` (B, T, n_units) → (B, d) and :meth:`embed_frames`
    (B, n_patches, dim) → (B, d), both L2-normalised; retrieval is their cosine.
    """

    def __init__(self, config: EncoderModelConfig):
        super().__init__()
        if config.contrastive_dim < 1:
            raise ValueError("the dual-tower model needs contrastive_dim >= 1")
        self.config = config
        self.body = SpikeWindowEncoder(config)
        self.towers = ContrastiveHeads(config)

    def forward(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.decode(*self.body(_apply_unit_mask(x, unit_mask)))

    def decode(self, sequence: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        """The neural tower's projection of the body's pooled output → (B, d)."""
        return self.towers.neural(pooled)

    def embed_windows(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward(x, unit_mask)

    def embed_frames(self, patches: torch.Tensor) -> torch.Tensor:
        return self.towers.image(patches)

    @property
    def config_shape(self) -> tuple[int, int]:
        """(n_patches, patch_dim) of the frames the image tower reads."""
        return self.config.n_patches, self.config.patch_dim

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


def symmetric_info_nce(neural: torch.Tensor, image: torch.Tensor, labels: torch.Tensor,
                       scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of windows (B, d) against frames (F, d); ``labels`` (B,) the frame of each
    window. Window → frame: cross-entropy over the F frames. Frame → window: each frame's
    positives are all its windows (mean log-likelihood over them)."""
    logits = scale * neural @ image.T  # (B, F)
    to_frame = F.cross_entropy(logits, labels)
    log_prob = logits.T.log_softmax(dim=1)  # (F, B): frame → windows
    positive = F.one_hot(labels, num_classes=image.shape[0]).T.to(log_prob.dtype)  # (F, B)
    to_window = -((log_prob * positive).sum(1) / positive.sum(1)).mean()
    return 0.5 * (to_frame + to_window)
