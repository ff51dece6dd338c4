"""The paper's narrator: a frozen LLaVA-1.5 whose vision tower is bypassed by predicted patches.

How LLaVA reads its vision tower (transformers 5.x, ``LlavaModel.get_image_features``)::

    out = vision_tower(pixel_values, output_hidden_states=...)      # CLIPVisionModel
    feats = out.hidden_states[config.vision_feature_layer]          # -2: the penultimate layer
    if config.vision_feature_select_strategy == "default":
        feats = feats[:, 1:]                                        # drop the CLS token
    image_embeds = multi_modal_projector(feats)                     # → LM token embeddings

:func:`injected_patches` swaps the tower's ``forward`` for one that returns the predicted
patches, with a CLS slot prepended, as exactly that hidden state. The projector and the
language model run unmodified. The CLS slot holds the mean predicted patch: it is dropped by the
``"default"`` strategy (LLaVA-1.5) and only reaches the projector under ``"full"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurrator.core.errors import InputError
from neurrator.narrate.base import NARRATORS
from neurrator.narrate.config import DEFAULT_PROMPT, NarrateConfig

DEFAULT_LLAVA_MODEL = "llava-hf/llava-1.5-7b-hf"

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_llava(model: str | Path, *, device: str = "cpu", dtype: str = "float32") -> tuple[Any, Any]:
    """Load a LLaVA-1.5-family model and its processor from a hub id or local directory.

    Returns ``(LlavaForConditionalGeneration, processor)``; the tokenizer pads on the left so that
    batched generation continues every prompt from its last token.
    """
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    try:
        llava = LlavaForConditionalGeneration.from_pretrained(str(model), dtype=_DTYPES[dtype])
        processor = AutoProcessor.from_pretrained(str(model))
    except OSError as exc:
        raise InputError(model, f"cannot load a LLaVA model (hub id or local directory): {exc}") from None
    processor.tokenizer.padding_side = "left"
    return llava.to(device).eval(), processor


def _tower_grid(llava: Any) -> int:
    vision = llava.config.vision_config
    return (vision.image_size // vision.patch_size) ** 2


@contextlib.contextmanager
def injected_patches(llava: Any, patches: torch.Tensor) -> Iterator[None]:
    """Within the block, ``llava``'s vision tower returns ``patches`` instead of running.

    Parameters
    ----------
    llava : a ``LlavaForConditionalGeneration``.
    patches : (batch, n_patches, dim) predicted penultimate-layer patch tokens (no CLS), where
        ``n_patches`` is the tower's grid (576 for ViT-L/14-336) and ``dim`` its hidden size.
        Every image in a generate call inside the block must belong to this batch, in order.

    The tower's own ``forward`` is restored on exit, also when the block raises.
    """
    tower = llava.model.vision_tower
    config = llava.config
    layer = config.vision_feature_layer
    if not isinstance(layer, int):
        raise ValueError(f"patch injection needs a single vision_feature_layer, the model uses {layer}")
    vision = config.vision_config
    if patches.ndim != 3 or patches.shape[1:] != (_tower_grid(llava), vision.hidden_size):
        raise ValueError(
            f"patches of shape {tuple(patches.shape)} do not fit this vision tower, which gives "
            f"(n, {_tower_grid(llava)}, {vision.hidden_size}): was the encoder trained on another vision space?"
        )
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    param = next(tower.parameters())
    patches = patches.to(device=param.device, dtype=param.dtype)
    hidden = torch.cat([patches.mean(dim=1, keepdim=True), patches], dim=1)  # (batch, 1 + n_patches, dim)

    def forward(pixel_values: torch.Tensor, *args: Any, **kwargs: Any) -> BaseModelOutputWithPooling:
        if pixel_values.shape[0] != hidden.shape[0]:
            raise ValueError(f"generate got {pixel_values.shape[0]} images but {hidden.shape[0]} patch sets are injected")
        states: list[torch.Tensor | None] = [None] * (vision.num_hidden_layers + 1)
        states[layer] = hidden
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=hidden[:, 0], hidden_states=tuple(states))

    saved = tower.__dict__.get("forward")  # an instance-level forward someone else installed
    tower.forward = forward
    try:
        yield
    finally:
        if saved is None:
            del tower.forward
        else:
            tower.forward = saved


class LlavaNarrator:
    """Narrate predicted patches with a frozen LLaVA-1.5 (the paper's narrator).

    Parameters
    ----------
    model : hub id or local directory of a LLaVA-1.5-family model.
    prompt : must contain the processor's image token once (``<image>``).
    max_new_tokens : greedy decoding budget.
    device, dtype : where and in which precision the model runs.
    batch_size : windows generated together.

    Examples
    --------
    >>> narrator = LlavaNarrator("llava-hf/llava-1.5-7b-hf")     # doctest: +SKIP
    >>> narrator.narrate(predicted)                              # doctest: +SKIP
    ['A car is parked in a parking lot.', ...]
    """

    name = "llava"
    is_stand_in = False

    def __init__(
        self,
        model: str | Path = DEFAULT_LLAVA_MODEL,
        *,
        prompt: str = DEFAULT_PROMPT,
        max_new_tokens: int = 60,
        device: str = "cpu",
        dtype: str = "float32",
        batch_size: int = 4,
    ):
        self.model_id = str(model)
        self.llava, self.processor = load_llava(model, device=device, dtype=dtype)
        self.image_token = self.processor.image_token
        if prompt.count(self.image_token) != 1:
            raise InputError(None, f"the narrator prompt must contain {self.image_token!r} exactly once: {prompt!r}")
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.description = f"{self.model_id} with predicted patches injected in place of its vision tower (greedy)"

    def _prompt_tokens(self, batch: int) -> dict[str, torch.Tensor]:
        """The prompt with the image token expanded to one token per projected patch."""
        n_image_tokens = _tower_grid(self.llava) + (self.llava.config.vision_feature_select_strategy == "full")
        text = self.prompt.replace(self.image_token, self.image_token * n_image_tokens)
        return self.processor.tokenizer([text] * batch, return_tensors="pt", padding=True)

    @torch.no_grad()
    def narrate(self, patches: torch.Tensor, *, progress: bool = False) -> list[str]:
        """``patches``: (n, n_patches, dim) predicted tower hidden states → n sentences."""
        patches = torch.as_tensor(patches)
        starts = range(0, patches.shape[0], self.batch_size)
        if progress:
            from tqdm import tqdm

            starts = tqdm(starts, desc="llava narration", unit="batch")
        device = next(self.llava.parameters()).device
        sentences: list[str] = []
        for start in starts:
            chunk = patches[start : start + self.batch_size]
            tokens = self._prompt_tokens(chunk.shape[0]).to(device)
            # The tower never looks at these pixels; they only tell LLaVA that an image is present.
            vision = self.llava.config.vision_config
            pixels = torch.zeros(chunk.shape[0], vision.num_channels, vision.image_size, vision.image_size, device=device)
            with injected_patches(self.llava, chunk):
                out = self.llava.generate(
                    **tokens, pixel_values=pixels, max_new_tokens=self.max_new_tokens, do_sample=False,
                    pad_token_id=self.processor.tokenizer.pad_token_id,
                )
            new_tokens = out[:, tokens["input_ids"].shape[1] :]
            sentences += [s.strip() for s in self.processor.batch_decode(new_tokens, skip_special_tokens=True)]
        return sentences


@torch.no_grad()
def describe_frames(llava: Any, processor: Any, frames: np.ndarray, *, prompt: str, max_new_tokens: int) -> list[str]:
    """Run LLaVA on real images, its vision tower included: (n, H, W[, 3]) uint8 → n sentences."""
    frames = np.asarray(frames)
    images = list(np.repeat(frames[..., None], 3, axis=-1) if frames.ndim == 3 else frames)
    inputs = processor(images=images, text=[prompt] * len(images), return_tensors="pt", padding=True)
    inputs = inputs.to(next(llava.parameters()).device)
    out = llava.generate(
        **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=processor.tokenizer.pad_token_id
    )
    return [s.strip() for s in processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)]


@NARRATORS.register("llava")
def _make_llava(config: NarrateConfig, bank: object | None) -> LlavaNarrator:
    return LlavaNarrator(
        config.llava_model, prompt=config.prompt, max_new_tokens=config.max_new_tokens,
        device=config.device, dtype=config.dtype, batch_size=config.batch_size,
    )
