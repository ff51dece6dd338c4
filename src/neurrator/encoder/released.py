"""Load checkpoints written by the released Neurrator code (github arnaumarin/neurrator).

The released ``scripts/train_patches.py`` saves the best epoch's ``model.state_dict()`` with
``torch.save``: a plain dict of tensors named after the released module's attributes. This module
reads such a file with ``torch.load(weights_only=True)`` (tensors and plain containers only; no
code is unpickled), infers the shapes, renames the entries to :class:`NeurratorPatches` and
returns a model whose outputs equal the released model's (to float round-off).

Name map (released → here)::

    multi_conv.branches.{i}.*         → body.conv.branches.{i}.*
    input_proj.*                      → body.input_proj.*
    transformer.layers.{l}.*          → body.temporal.layers.{l}.*
    patch_queries                     → head.patch_queries
    cross_attn.*                      → head.cross_attn.*
    ca_norm.*                         → head.cross_norm.*
    patch_transformer.layers.{l}.*    → head.patch_transformer.layers.{l}.*
    out_proj.*                        → head.out_proj.*

The number of attention heads is not stored in a state dict; the released default is 8.
The released model has no z-score statistics or unit ids in its file: the caller must feed it
windows z-scored as in the released preprocessing, with units in the released column order.

>>> model = load_released_checkpoint("neurrator_patches_nm1_715093703.pt")   # doctest: +SKIP
>>> model(windows)              # (B, 20, n_units) → (B, 576, 1024)          # doctest: +SKIP
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from neurrator.core.errors import InputError
from neurrator.encoder.model import EncoderModelConfig, NeurratorPatches

#: Released prefix → prefix in :class:`NeurratorPatches` (longest match first).
NAME_MAP: tuple[tuple[str, str], ...] = (
    ("multi_conv.", "body.conv."),
    ("input_proj.", "body.input_proj."),
    ("transformer.", "body.temporal."),
    ("patch_transformer.", "head.patch_transformer."),
    ("patch_queries", "head.patch_queries"),
    ("cross_attn.", "head.cross_attn."),
    ("ca_norm.", "head.cross_norm."),
    ("out_proj.", "head.out_proj."),
)


def rename_released(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released state-dict names → :class:`NeurratorPatches` names (:data:`NAME_MAP`).

    Raises ``KeyError`` naming the first entry that has no counterpart.
    """
    renamed = {}
    for key, value in state.items():
        for old, new in sorted(NAME_MAP, key=lambda p: -len(p[0])):
            if key.startswith(old):
                renamed[new + key[len(old):]] = value
                break
        else:
            raise KeyError(key)
    return renamed


def released_config(state: dict[str, torch.Tensor], *, n_heads: int = 8, dropout: float = 0.2) -> EncoderModelConfig:
    """The :class:`EncoderModelConfig` of a released state dict, inferred from its shapes."""
    kernels, branch = [], 0
    while f"multi_conv.branches.{branch}.0.weight" in state:
        kernels.append(int(state[f"multi_conv.branches.{branch}.0.weight"].shape[2]))
        branch += 1
    conv = state["multi_conv.branches.0.0.weight"]  # (conv_ch, n_units, k)
    layers = lambda prefix: len({m.group(1) for k in state if (m := re.match(rf"{prefix}\.layers\.(\d+)\.", k))})
    n_patches, d_model = state["patch_queries"].shape
    return EncoderModelConfig(
        n_units=int(conv.shape[1]),
        n_patches=int(n_patches),
        patch_dim=int(state["out_proj.1.weight"].shape[0]),
        conv_kernels=tuple(kernels),
        conv_channels=int(conv.shape[0]),
        unit_bottleneck=None,
        d_model=int(d_model),
        n_heads=n_heads,
        ff_dim=int(state["transformer.layers.0.linear1.weight"].shape[0]),
        temporal_layers=layers("transformer"),
        patch_layers=layers("patch_transformer"),
        dropout=dropout,
        head="patches",
        memory="sequence",
    )


def load_released_checkpoint(path: str | Path, *, n_heads: int = 8) -> NeurratorPatches:
    """A :class:`NeurratorPatches` (eval mode) holding a released ``torch.save`` state dict.

    Raises :class:`InputError` if the file cannot be read safely or is not a released
    Neurrator-Patches state dict.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(path, "released checkpoint not found") from None
    except Exception as exc:  # noqa: BLE001 - the unpickler raises many types for foreign files
        raise InputError(path, f"not a weights-only torch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(path, "expected a state dict of tensors (the released train_patches.py output)")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel
    try:
        config = released_config(state, n_heads=n_heads)
        model = NeurratorPatches(config)
        model.load_state_dict(rename_released(state))
    except (KeyError, RuntimeError, ValueError) as exc:
        raise InputError(path, f"not a released Neurrator-Patches state dict ({type(exc).__name__}: {exc})") from None
    return model.eval()
