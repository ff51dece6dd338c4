"""The vision-space interface: frames in, a patch grid of features out.

A vision space is the encoder's training target. The paper's is the penultimate layer of
CLIP ViT-L/14-336 (576 patches × 1024), the exact tensor LLaVA-1.5's projector reads.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from neurrator.core.registry import Registry


@dataclass(frozen=True)
class SpaceInfo:
    """Metadata that identifies a vision space.

    Attributes
    ----------
    space_id : stable id; part of the target-cache key and stored in every checkpoint.
    grid : (rows, cols) of the patch grid; ``rows * cols == n_patches``.
    dim : feature dimension per patch.
    layer : which layer the features come from (e.g. ``"hidden_states[-2]"``).
    is_stand_in : True if this is not the vision tower the narrator expects (an offline stand-in).
    description : one line for reports.
    """

    space_id: str
    grid: tuple[int, int]
    dim: int
    layer: str
    is_stand_in: bool
    description: str = ""

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["grid"] = list(self.grid)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> SpaceInfo:
        return cls(**{**d, "grid": tuple(d["grid"])})


@runtime_checkable
class VisionSpace(Protocol):
    """Anything with ``info`` and ``embed`` is a vision space."""

    info: SpaceInfo

    def embed(self, frames: np.ndarray, *, batch_size: int = 32, progress: bool = False) -> torch.Tensor:
        """Embed frames.

        Parameters
        ----------
        frames : (n_frames, height, width) uint8 grayscale or (n_frames, height, width, 3) uint8 RGB.

        Returns
        -------
        (n_frames, n_patches, dim) float32 tensor on CPU.
        """
        ...


#: Registry of vision-space backends, by name (``"clip"``, ``"oriented-energy"``, ...).
VISION_SPACES: Registry[VisionSpace] = Registry(
    "vision space", builtin_modules=("neurrator.vision.clip", "neurrator.vision.oriented_energy")
)


@dataclass(frozen=True)
class PatchTargets:
    """Patch targets of every frame of one stimulus, usually memory-mapped from the cache.

    Attributes
    ----------
    patches : (n_frames, n_patches, dim) float16 array (an ``np.memmap`` when read from disk).
    info : the vision space that produced them.
    stimulus_hash : ``Stimulus.content_hash`` of the frames they were computed from.
    """

    patches: np.ndarray
    info: SpaceInfo
    stimulus_hash: str

    @property
    def n_frames(self) -> int:
        return int(self.patches.shape[0])

    def batch(self, frames: np.ndarray) -> torch.Tensor:
        """Targets of ``frames`` as a float32 tensor (n, n_patches, dim); reads only those rows."""
        return torch.from_numpy(np.asarray(self.patches[np.asarray(frames)], dtype=np.float32))

