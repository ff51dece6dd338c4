"""Config section for the vision space (training target) and the patch-target cache."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The paper's vision tower (LLaVA-1.5's): 24 × 24 patches × 1024 at its penultimate layer.
DEFAULT_CLIP_MODEL = "openai/clip-vit-large-patch14-336"


class VisionConfig(BaseModel):
    """Options for the vision space (training target) and the patch-target cache.

    The default backend, ``"oriented-energy"``, is an offline stand-in (no pretrained weights are
    available here); ``"clip"`` is the paper's space and needs ``model`` to be reachable.
    """

    model_config = ConfigDict(extra="forbid")
    #: Registered vision-space name: ``"oriented-energy"`` (offline stand-in) or ``"clip"``.
    backend: str = "oriented-energy"
    #: CLIP backend: hub id or local directory of a CLIP (vision) checkpoint.
    model: str = DEFAULT_CLIP_MODEL
    #: CLIP backend: index into ``hidden_states`` (LLaVA-1.5 reads -2, without the CLS token).
    feature_layer: int = -2
    #: CLIP backend: torch device and weight/activation dtype.
    device: str = "cpu"
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    #: CLIP backend: never reach for the network (fail fast offline).
    local_files_only: bool = False
    #: Frames per forward pass while building the patch-target cache.
    batch_size: int = Field(32, ge=1)
    #: torch CPU threads while embedding (0 = leave torch's setting). One thread is the default
    #: because thread pools spinning on a shared 2-core machine were 2-4x slower (measured on
    #: oriented-energy: 65-78 frames/s with 1 thread vs 19-33 with 2, under load).
    num_threads: int = Field(1, ge=0)
    #: Show a progress bar while embedding.
    progress: bool = True
