"""neurrator.vision: vision spaces (the encoder's training target) and the patch-target cache.

Backends register in :data:`neurrator.vision.base.VISION_SPACES`: ``"clip"`` (the paper's
CLIP ViT-L/14-336 penultimate layer) and ``"oriented-energy"`` (the offline stand-in).
This package module stays import-light (no torch), because the run config imports its config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from neurrator.vision.base import VisionSpace
    from neurrator.vision.config import VisionConfig


def build_space(config: VisionConfig) -> VisionSpace:
    """The vision space named by ``config.backend``, built from the rest of ``config``."""
    from neurrator.vision.base import VISION_SPACES  # also registers the built-in backends

    return VISION_SPACES.create(config.backend, config=config)
