"""Sparse autoencoders over vision-space patch features, and how to train, save and load them.

A TopK SAE (Gao et al. 2024, "Scaling and evaluating sparse autoencoders")::

    z = TopK(ReLU((x · s − b_dec) W_enc + b_enc))        x̂ = (z W_dec + b_dec) / s

with ``s`` a fixed input scale that makes E‖x·s − mean‖² = d_in, unit-norm decoder rows, and the
AuxK loss that revives dead latents. Weights are stored like SAELens does (``W_enc`` (d_in, d_sae),
``W_dec`` (d_sae, d_in), ``b_enc``, ``b_dec`` in safetensors, a ``cfg.json`` beside them), so a
pretrained SAELens-format SAE (TopK or ReLU) loads through the same path.

Backends (``SAE_BACKENDS``): ``"topk"`` trains on a corpus (the offline default);
``"pretrained"`` loads from a folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors
from torch import nn

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir
from neurrator.core.registry import Registry

WEIGHTS_FILE = "sae_weights.safetensors"
CONFIG_FILE = "cfg.json"


def keep_top_k(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the ``k`` largest entries of each row of ``pre`` (n, d); differentiable.

    The k-th largest value comes from ``np.partition`` on a detached copy, which measured 2×
    faster than ``torch.topk`` + ``scatter`` on CPU; exact ties at the threshold may keep a
    few more than k entries.
    """
    values = pre.detach().cpu().numpy()
    kth = -np.partition(-values, k - 1, axis=-1)[..., k - 1 : k]
    return pre * (pre >= torch.from_numpy(kth).to(pre.device))


class SparseAutoencoder(nn.Module):
    """A TopK (``k`` set) or ReLU (``k=None``) sparse autoencoder.

    Parameters
    ----------
    d_in : input dimension (the vision space's patch dim).
    d_sae : number of latents (dictionary size).
    k : active latents per input for TopK; ``None`` for a plain ReLU SAE.
    input_scale : inputs are multiplied by this before encoding (and outputs divided).
    """

    def __init__(self, d_in: int, d_sae: int, k: int | None = None, input_scale: float = 1.0):
        super().__init__()
        self.d_in, self.d_sae, self.k = d_in, d_sae, k
        self.W_enc = nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = nn.Parameter(torch.zeros(d_sae))
        self.W_dec = nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("input_scale", torch.tensor(float(input_scale)))
        self.meta: dict = {}

    @property
    def architecture(self) -> str:
        return "topk" if self.k is not None else "standard"

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d_in) → (n, d_sae) latent pre-activations."""
        return (x * self.input_scale - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(n, d_in) → (n, d_sae) sparse non-negative codes."""
        pre = torch.relu(self.pre_activations(x))
        if self.k is None or self.k >= self.d_sae:
            return pre
        return keep_top_k(pre, self.k)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(n, d_sae) → (n, d_in) reconstruction in input units."""
        return (z @ self.W_dec + self.b_dec) / self.input_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.encode(x)
        return self.decode(z), z

    @torch.no_grad()
    def encode_batched(self, x: np.ndarray | torch.Tensor, batch_size: int = 8192) -> np.ndarray:
        """Codes of many vectors, (n, d_in) → (n, d_sae) float32, in batches."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32))
        return torch.cat(
            [self.encode(x[i : i + batch_size]) for i in range(0, len(x), batch_size)]
        ).numpy()

    # ---- persistence (SAELens layout) ------------------------------------------------------
    def files(self) -> dict[str, bytes]:
        """``sae_weights.safetensors`` and ``cfg.json`` as bytes (the SAELens layout)."""
        cfg = {"d_in": self.d_in, "d_sae": self.d_sae, "architecture": self.architecture, "k": self.k,
               "input_scale": float(self.input_scale), **self.meta}
        weights = save_safetensors({k: v.detach().contiguous() for k, v in self.state_dict().items()})
        return {WEIGHTS_FILE: weights, CONFIG_FILE: json.dumps(cfg, indent=2).encode()}

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write :meth:`files` atomically into ``directory``."""
        with atomic_dir(directory) as tmp:
            for name, data in self.files().items():
                (tmp / name).write_bytes(data)
        return Path(directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> SparseAutoencoder:
        """Load from a folder with ``cfg.json`` and one ``*.safetensors`` file (SAELens layout)."""
        directory = Path(directory)
        cfg_path = directory / CONFIG_FILE
        if not cfg_path.is_file():
            raise InputError(directory, f"not an SAE folder: no {CONFIG_FILE}")
        try:
            cfg = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(cfg_path, f"not valid JSON: {exc}") from None
        weights = sorted(directory.glob("*.safetensors"))
        if len(weights) != 1:
            raise InputError(directory, f"expected one *.safetensors file, found {len(weights)}")
        state = load_file(str(weights[0]))
        missing = {"W_enc", "W_dec", "b_enc", "b_dec"} - set(state)
        if missing:
            raise InputError(weights[0], f"missing SAE tensors {sorted(missing)}")
        d_in, d_sae = state["W_enc"].shape
        if state["W_dec"].shape != (d_sae, d_in):
            raise InputError(
                weights[0],
                f"W_dec has shape {tuple(state['W_dec'].shape)}, expected {(d_sae, d_in)}",
            )
        k = cfg.get("k", (cfg.get("activation_fn_kwargs") or {}).get("k"))
        if k is None and cfg.get("architecture") == "topk":
            raise InputError(cfg_path, "architecture is topk but no k is given")
        sae = cls(
            int(d_in), int(d_sae), None if k is None else int(k), float(cfg.get("input_scale", 1.0))
        )
        sae.load_state_dict(
            {**state, "input_scale": torch.tensor(float(cfg.get("input_scale", 1.0)))}, strict=False
        )
        sae.meta = {
            k_: v
            for k_, v in cfg.items()
            if k_ not in {"d_in", "d_sae", "architecture", "k", "input_scale"}
        }
        sae.meta["source"] = str(directory)
        return sae.eval()


# ---- quality ---------------------------------------------------------------------------------
@dataclass
class SAEMetrics:
    """Explained variance of the reconstruction, mean active latents per input (L0), and the
    fraction of latents never active on the evaluation vectors."""

    explained_variance: float
    l0: float
    dead_fraction: float
    n_vectors: int


@torch.no_grad()
def evaluate_sae(sae: SparseAutoencoder, x: np.ndarray, batch_size: int = 8192) -> SAEMetrics:
    """Quality of ``sae`` on vectors ``x`` (n, d_in)."""
    x_t = torch.as_tensor(np.asarray(x, dtype=np.float32))
    mean = x_t.mean(0)
    sq_err = sq_tot = l0 = 0.0
    ever = torch.zeros(sae.d_sae, dtype=torch.bool)
    for i in range(0, len(x_t), batch_size):
        xb = x_t[i : i + batch_size]
        x_hat, z = sae(xb)
        sq_err += float(((xb - x_hat) ** 2).sum())
        sq_tot += float(((xb - mean) ** 2).sum())
        active = z > 0
        l0 += float(active.sum())
        ever |= active.any(0)
    return SAEMetrics(
        explained_variance=1.0 - sq_err / max(sq_tot, 1e-12),
        l0=l0 / len(x_t),
        dead_fraction=float((~ever).float().mean()),
        n_vectors=len(x_t),
    )


# ---- training --------------------------------------------------------------------------------
@dataclass
class TopKTrainConfig:
    d_sae: int
    k: int = 16
    epochs: int = 8
    batch_size: int = 1024
    lr: float = 1e-3
    aux_k: int = 64
    aux_coef: float = 1 / 32
    #: A latent is dead after this many training vectors without firing (AuxK revives it).
    dead_after: int = 50_000
    seed: int = 0


def train_topk_sae(x: np.ndarray, config: TopKTrainConfig) -> tuple[SparseAutoencoder, list[dict]]:
    """Train a TopK SAE on vectors ``x`` (n, d_in). Returns the SAE and a per-epoch log.

    Initialisation follows Gao et al.: ``b_dec`` = data mean, random unit decoder rows, encoder =
    decoder transposed. After each step the decoder rows are renormalised to unit length.
    """
    gen = torch.Generator().manual_seed(config.seed)
    data = torch.as_tensor(np.asarray(x, dtype=np.float32))
    n, d_in = data.shape
    mean = data.mean(0)
    scale = math.sqrt(d_in / max(float(((data - mean) ** 2).sum(1).mean()), 1e-12))
    sae = SparseAutoencoder(d_in, config.d_sae, config.k, input_scale=scale)
    with torch.no_grad():
        w = torch.randn(config.d_sae, d_in, generator=gen)
        sae.W_dec.copy_(w / w.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(mean * scale)
    opt = torch.optim.Adam(sae.parameters(), lr=config.lr)
    since_fired = torch.zeros(config.d_sae)
    log = []
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=gen)
        total = aux_total = 0.0
        for start in range(0, n, config.batch_size):
            xb = data[order[start : start + config.batch_size]] * scale  # work in scaled units
            pre = torch.relu((xb - sae.b_dec) @ sae.W_enc + sae.b_enc)
            z = keep_top_k(pre, config.k)
            x_hat = z @ sae.W_dec + sae.b_dec
            residual = xb - x_hat
            loss = (residual**2).sum(-1).mean() / d_in
            # AuxK: let latents that have been silent for long reconstruct what the top-k missed.
            since_fired += len(xb)
            since_fired[(z > 0).any(0)] = 0
            dead = since_fired > config.dead_after
            aux = torch.zeros(())
            if dead.any():
                k_aux = min(config.aux_k, int(dead.sum()))
                z_aux = keep_top_k(pre.masked_fill(~dead, 0.0), k_aux)
                target = residual.detach()
                aux = ((z_aux @ sae.W_dec - target) ** 2).sum(-1).mean() / (target**2).sum(
                    -1
                ).mean().clamp_min(1e-12)
            opt.zero_grad(set_to_none=True)
            (loss + config.aux_coef * aux).backward()
            opt.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)
            total += loss.item() * len(xb)
            aux_total += aux.item() * len(xb)
        log.append(
            {
                "epoch": epoch + 1,
                "mse_per_dim": total / n,
                "aux_loss": aux_total / n,
                "dead_latents": int((since_fired > config.dead_after).sum()),
            }
        )
    sae.meta = {"trained_on_vectors": int(n), "train_config": asdict(config)}
    return sae.eval(), log


#: SAE backends. Factories take ``config`` (an ``SAEConfig``), ``features`` (n, d_in) corpus
#: patch vectors and ``seed``; they return a ready ``SparseAutoencoder``.
SAE_BACKENDS: Registry[SparseAutoencoder] = Registry("sparse autoencoder")


@SAE_BACKENDS.register("topk")
def _train_topk_backend(*, config, features: np.ndarray, seed: int = 0, **_) -> SparseAutoencoder:
    d_in = features.shape[1]
    sae, log = train_topk_sae(
        features,
        TopKTrainConfig(
            d_sae=config.expansion * d_in,
            k=config.k,
            epochs=config.epochs,
            batch_size=config.batch_size,
            lr=config.lr,
            seed=seed,
        ),
    )
    sae.meta["train_log"] = log
    sae.meta["source"] = "trained here (TopK, offline default)"
    return sae


@SAE_BACKENDS.register("pretrained")
def _load_pretrained_backend(*, config, features: np.ndarray, **_) -> SparseAutoencoder:
    if config.path is None:
        raise InputError(
            None, "analysis.sae.backend is 'pretrained' but analysis.sae.path is not set"
        )
    sae = SparseAutoencoder.from_pretrained(config.path)
    if sae.d_in != features.shape[1]:
        raise InputError(
            config.path,
            f"SAE reads d_in={sae.d_in} but the vision space has dim {features.shape[1]}",
        )
    return sae


@torch.no_grad()
def mean_codes(
    sae: SparseAutoencoder, patches: np.ndarray | torch.Tensor, batch_size: int = 64
) -> np.ndarray:
    """Patch-mean SAE code of each item: (n, n_patches, d_in) → (n, d_sae) float32."""
    patches = (
        torch.as_tensor(np.asarray(patches, dtype=np.float32))
        if not torch.is_tensor(patches)
        else patches.float()
    )
    out = []
    for i in range(0, len(patches), batch_size):
        chunk = patches[i : i + batch_size]
        z = sae.encode(chunk.reshape(-1, chunk.shape[-1]))
        out.append(z.reshape(len(chunk), -1, sae.d_sae).mean(1))
    return torch.cat(out).numpy() if out else np.zeros((0, sae.d_sae), dtype=np.float32)
