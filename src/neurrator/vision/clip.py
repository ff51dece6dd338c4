"""The paper's vision space: a frozen Hugging Face CLIP vision tower, read where LLaVA-1.5 reads it.

LLaVA-1.5 feeds its projector ``vision_tower(pixels, output_hidden_states=True).hidden_states[-2]``
with the CLS token dropped (``vision_feature_layer=-2``, ``vision_feature_select_strategy="default"``).
For the default tower, ``openai/clip-vit-large-patch14-336``, that is 576 patches × 1024.
:class:`CLIPSpace` returns exactly that tensor, after the same preprocessing as LLaVA's
``CLIPImageProcessor``: resize the shortest side to the tower's size (bicubic), centre-crop,
rescale to [0, 1], normalise with the CLIP mean and std; grayscale frames become 3 equal channels.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from neurrator.core.errors import InputError
from neurrator.vision.base import VISION_SPACES, SpaceInfo
from neurrator.vision.config import DEFAULT_CLIP_MODEL

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _fingerprint(model_dir: Path) -> str:
    """Short content fingerprint of a local checkpoint: config + size, head and tail of each weight file.

    Cheap even for GB-sized weights, and different for any two checkpoints that differ in practice;
    it keys the patch-target cache so two local models never share targets.
    """
    h = hashlib.sha256()
    for path in sorted(model_dir.iterdir()):
        if path.name == "config.json" or path.suffix in {".safetensors", ".bin"}:
            h.update(path.name.encode())
            size = path.stat().st_size
            h.update(str(size).encode())
            with open(path, "rb") as fh:
                h.update(fh.read(1 << 20))
                fh.seek(max(0, size - (1 << 20)))
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:12]


class CLIPSpace:
    """Penultimate-layer patch tokens of a CLIP vision tower (any hub id or local directory).

    Parameters
    ----------
    model : hub id (e.g. ``"openai/clip-vit-large-patch14-336"``) or a local directory written by
        ``save_pretrained`` (a full CLIP or a CLIP vision checkpoint).
    device : torch device, e.g. ``"cpu"`` or ``"cuda"``.
    dtype : ``"float32"``, ``"float16"`` or ``"bfloat16"`` for the tower's weights and activations.
    feature_layer : index into ``hidden_states`` (LLaVA-1.5 uses -2).
    local_files_only : never try the network (set this offline to fail fast).

    Attributes
    ----------
    info : ``SpaceInfo``; ``grid = image_size // patch_size`` per side, ``dim = hidden_size``.
    model : the ``transformers.CLIPVisionModel`` (eval mode).
    processor : the ``CLIPImageProcessor`` (PIL backend, so it works without torchvision).
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_CLIP_MODEL,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        feature_layer: int = -2,
        local_files_only: bool = False,
    ):
        from transformers import CLIPVisionModel

        if dtype not in _DTYPES:
            raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
        source = str(model)
        local_dir = Path(source) if Path(source).is_dir() else None
        try:
            self.model = CLIPVisionModel.from_pretrained(
                source, dtype=_DTYPES[dtype], local_files_only=local_files_only
            ).to(device).eval()
        except OSError as exc:
            raise InputError(
                local_dir,
                f"could not load CLIP vision model {source!r} ({exc.__class__.__name__}: {str(exc)[:200]}). "
                "Give a hub id reachable from here or a local directory saved with save_pretrained; "
                "offline, use vision.backend=oriented-energy.",
            ) from None
        self.processor = self._load_processor(source, local_files_only)
        self.device, self.dtype, self.feature_layer = torch.device(device), _DTYPES[dtype], feature_layer
        config = self.model.config
        n_layers = config.num_hidden_layers
        if not -(n_layers + 1) <= feature_layer <= n_layers:
            raise ValueError(f"feature_layer {feature_layer} outside hidden_states of a {n_layers}-layer tower")
        side = config.image_size // config.patch_size
        name = source if local_dir is None else f"{local_dir.name}@{_fingerprint(local_dir)}"
        self.info = SpaceInfo(
            space_id=f"clip:{name}:hidden_states[{feature_layer}]:no-cls:{dtype}",
            grid=(side, side),
            dim=config.hidden_size,
            layer=f"hidden_states[{feature_layer}][:, 1:]",
            is_stand_in=False,
            description=(
                f"CLIP vision tower {source}, hidden_states[{feature_layer}] without CLS "
                f"({side}×{side} patches × {config.hidden_size}), as read by LLaVA-1.5's projector."
            ),
        )

    def _load_processor(self, source: str, local_files_only: bool):
        """The checkpoint's own ``CLIPImageProcessor`` settings, or LLaVA-1.5's defaults for its size.

        The PIL backend is used explicitly: the default torchvision backend is unavailable here and
        the PIL one is the reference implementation the fast one is checked against.
        """
        from transformers import CLIPImageProcessorPil

        try:
            return CLIPImageProcessorPil.from_pretrained(source, local_files_only=local_files_only)
        except OSError:
            size = self.model.config.image_size
            return CLIPImageProcessorPil(
                size={"shortest_edge": size}, crop_size={"height": size, "width": size}
            )

    def preprocess(self, frames: np.ndarray) -> torch.Tensor:
        """(n, H, W) or (n, H, W, 3) uint8 → (n, 3, S, S) normalised pixel values (float32)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = np.repeat(frames[..., None], 3, axis=-1)  # grayscale → 3 equal channels
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (n, H, W) or (n, H, W, 3), got shape {frames.shape}")
        # Explicit channel order: tiny frames (e.g. 3 px tall) would otherwise be ambiguous.
        return self.processor(images=list(frames), return_tensors="pt", input_data_format="channels_last")[
            "pixel_values"
        ]

    @torch.no_grad()
    def embed(self, frames: np.ndarray, *, batch_size: int = 16, progress: bool = False) -> torch.Tensor:
        """Embed frames.

        Parameters
        ----------
        frames : (n_frames, height, width) uint8 grayscale or (n_frames, height, width, 3) uint8 RGB.

        Returns
        -------
        (n_frames, n_patches, hidden_size) float32 tensor on CPU: ``hidden_states[feature_layer][:, 1:]``.
        """
        out = torch.empty(len(frames), self.info.n_patches, self.info.dim)
        starts = range(0, len(frames), batch_size)
        for start in tqdm(starts, desc="clip", unit="batch", disable=not progress):
            pixels = self.preprocess(frames[start : start + batch_size]).to(self.device, self.dtype)
            hidden = self.model(pixel_values=pixels, output_hidden_states=True).hidden_states
            out[start : start + len(pixels)] = hidden[self.feature_layer][:, 1:].float().cpu()
        return out

    @classmethod
    def from_config(cls, config) -> CLIPSpace:
        """Build from a :class:`~neurrator.vision.config.VisionConfig`."""
        return cls(
            config.model,
            device=config.device,
            dtype=config.dtype,
            feature_layer=config.feature_layer,
            local_files_only=config.local_files_only,
        )


VISION_SPACES.register("clip")(CLIPSpace.from_config)
