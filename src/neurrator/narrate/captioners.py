"""Reference captioners: the captions narrations are scored against (and the retrieval bank's).

- ``bundled``: the stimulus's own captions (``Stimulus.captions``): the demo's human captions,
  or the user's caption JSON given at ingest as ``data.captions_json`` (the one caption key).
- ``blip2``: BLIP-2 on the true frames (the paper's references, e.g. ``Salesforce/blip2-opt-2.7b``).
- ``llava``: LLaVA-1.5 on the true frames, vision tower included.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurrator.core.errors import InputError
from neurrator.narrate.base import CAPTIONERS
from neurrator.narrate.config import NarrateConfig
from neurrator.narrate.llava import describe_frames, load_llava


class MappingCaptioner:
    """Captions looked up by frame index (the stimulus's captions).

    Parameters
    ----------
    captions : frame index → captions.
    name : the captioner's name (``"bundled"``).
    source : where the captions came from (for error messages and reports).
    is_stand_in : True if these are not the paper's BLIP-2 references.
    """

    def __init__(self, captions: Mapping[int, Sequence[str]], *, name: str, source: str, is_stand_in: bool):
        self.captions = {int(k): list(v) for k, v in captions.items()}
        self.name = name
        self.source = source
        self.is_stand_in = is_stand_in
        self.description = f"{name} captions from {source}" + (
            " (human captions of an embedded stand-in stimulus; the paper scores against BLIP-2)" if is_stand_in else ""
        )

    def caption(self, frames: np.ndarray | None, frame_ids: np.ndarray) -> list[list[str]]:
        """Captions of ``frame_ids`` (n,); ``frames`` is not needed and may be ``None``."""
        missing = [int(f) for f in np.asarray(frame_ids) if int(f) not in self.captions]
        if missing:
            raise InputError(self.source, f"no caption for frame(s) {missing[:10]}{' …' if len(missing) > 10 else ''}")
        return [list(self.captions[int(f)]) for f in np.asarray(frame_ids)]


def _as_rgb_list(frames: np.ndarray) -> list[np.ndarray]:
    frames = np.asarray(frames)
    return list(np.repeat(frames[..., None], 3, axis=-1) if frames.ndim == 3 else frames)


class Blip2Captioner:
    """BLIP-2 captions of the true frames (unconditional, greedy).

    Parameters
    ----------
    model : hub id or local directory, e.g. ``"Salesforce/blip2-opt-2.7b"``.
    max_new_tokens, device, dtype, batch_size : generation options.
    """

    name = "blip2"
    is_stand_in = False

    def __init__(
        self, model: str | Path = "Salesforce/blip2-opt-2.7b", *, max_new_tokens: int = 30,
        device: str = "cpu", dtype: str = "float32", batch_size: int = 8,
    ):
        from transformers import AutoProcessor, Blip2ForConditionalGeneration

        try:
            self.model = Blip2ForConditionalGeneration.from_pretrained(str(model), dtype=getattr(torch, dtype))
            self.processor = AutoProcessor.from_pretrained(str(model))
        except OSError as exc:
            raise InputError(model, f"cannot load a BLIP-2 model (hub id or local directory): {exc}") from None
        self.model = self.model.to(device).eval()
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.description = f"BLIP-2 ({model}) captions of the true frames"

    @torch.no_grad()
    def caption(self, frames: np.ndarray, frame_ids: np.ndarray) -> list[list[str]]:
        """``frames``: (n, H, W) or (n, H, W, 3) uint8 → one caption per frame."""
        device = next(self.model.parameters()).device
        captions: list[list[str]] = []
        for start in range(0, len(frames), self.batch_size):
            inputs = self.processor(images=_as_rgb_list(frames[start : start + self.batch_size]), return_tensors="pt")
            out = self.model.generate(**inputs.to(device), max_new_tokens=self.max_new_tokens, do_sample=False)
            # Without a text prompt the output holds only special tokens (image queries, BOS) and the caption.
            captions += [[s.strip()] for s in self.processor.batch_decode(out, skip_special_tokens=True)]
        return captions


class LlavaCaptioner:
    """LLaVA-1.5 captions of the true frames (its own vision tower, greedy, the narrator's prompt)."""

    name = "llava"
    is_stand_in = False

    def __init__(
        self, model: str | Path, *, prompt: str, max_new_tokens: int = 60,
        device: str = "cpu", dtype: str = "float32", batch_size: int = 4,
    ):
        self.model, self.processor = load_llava(model, device=device, dtype=dtype)
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.description = f"LLaVA ({model}) captions of the true frames"

    def caption(self, frames: np.ndarray, frame_ids: np.ndarray) -> list[list[str]]:
        """``frames``: (n, H, W) or (n, H, W, 3) uint8 → one caption per frame."""
        captions: list[list[str]] = []
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            captions += [[s] for s in describe_frames(
                self.model, self.processor, chunk, prompt=self.prompt, max_new_tokens=self.max_new_tokens
            )]
        return captions


@CAPTIONERS.register("bundled")
def _make_bundled(config: NarrateConfig, stimulus: Any) -> MappingCaptioner:
    if not stimulus.captions:
        raise InputError(None, f"stimulus {stimulus.name!r} has no captions; give your own at ingest with "
                               "data.captions_json=<file>, or caption the frames with narrate.captioner=blip2 or llava")
    return MappingCaptioner(
        stimulus.captions, name="bundled", source=f"the {stimulus.name} stimulus", is_stand_in=stimulus.is_stand_in
    )


@CAPTIONERS.register("blip2")
def _make_blip2(config: NarrateConfig, stimulus: Any) -> Blip2Captioner:
    return Blip2Captioner(config.blip2_model, device=config.device, dtype=config.dtype, batch_size=config.batch_size)


@CAPTIONERS.register("llava")
def _make_llava_captioner(config: NarrateConfig, stimulus: Any) -> LlavaCaptioner:
    return LlavaCaptioner(
        config.llava_model, prompt=config.prompt, max_new_tokens=config.max_new_tokens,
        device=config.device, dtype=config.dtype, batch_size=config.batch_size,
    )
