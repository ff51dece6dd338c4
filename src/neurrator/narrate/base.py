"""Narrator and captioner interfaces.

A *narrator* turns predicted patch tensors into one sentence each. A *captioner* writes
reference captions for true frames (the targets narrations are scored against).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from neurrator.core.registry import Registry


@runtime_checkable
class Narrator(Protocol):
    """Patches → sentences.

    Attributes
    ----------
    name : backend name, e.g. ``"llava"``, ``"retrieval"``, ``"retrieval+lm"``.
    is_stand_in : True if this is not the paper's frozen LLaVA-1.5.
    """

    name: str
    is_stand_in: bool

    def narrate(self, patches: torch.Tensor, *, progress: bool = False) -> list[str]:
        """``patches``: (n, n_patches, dim) float tensor → n sentences."""
        ...


@runtime_checkable
class Captioner(Protocol):
    """True frames → reference captions."""

    name: str
    is_stand_in: bool

    def caption(self, frames: np.ndarray, frame_ids: np.ndarray) -> list[list[str]]:
        """``frames``: (n, H, W) uint8; ``frame_ids``: (n,) stimulus indices → captions per frame."""
        ...


# The built-in backends register themselves when their modules are imported; the registries
# import them on first use, so importing this module stays cheap and cycle-free.
_BUILTIN_BACKENDS = (
    "neurrator.narrate.llava",
    "neurrator.narrate.vllm",
    "neurrator.narrate.retrieval",
    "neurrator.narrate.retrieval_lm",
    "neurrator.narrate.captioners",
)
NARRATORS: Registry[Narrator] = Registry("narrator", builtin_modules=_BUILTIN_BACKENDS)
CAPTIONERS: Registry[Captioner] = Registry("captioner", builtin_modules=_BUILTIN_BACKENDS)
