"""neurrator.encoder: spike windows → patch tensors of a vision space (paper §3.1, A.2).

Public API: :class:`Neurrator` (patch regression, sklearn-style), :class:`NeurratorRetriever`
(classification over training frames), the models :class:`NeurratorPatches` and
:class:`NeurratorRetrieval`, and checkpoint I/O.
"""

from neurrator.encoder.checkpoint import CheckpointMeta, load_checkpoint, save_checkpoint
from neurrator.encoder.config import PRESETS, EncoderConfig
from neurrator.encoder.estimator import Neurrator, NeurratorRetriever, mean_patch_baseline
from neurrator.encoder.model import (
    EncoderModelConfig,
    NeurratorPatches,
    NeurratorRetrieval,
    info_nce,
    patch_cosine,
    patch_loss,
)
from neurrator.encoder.train import TrainResult, train_encoder

__all__ = [
    "PRESETS",
    "CheckpointMeta",
    "EncoderConfig",
    "EncoderModelConfig",
    "Neurrator",
    "NeurratorPatches",
    "NeurratorRetrieval",
    "NeurratorRetriever",
    "TrainResult",
    "info_nce",
    "load_checkpoint",
    "mean_patch_baseline",
    "patch_cosine",
    "patch_loss",
    "save_checkpoint",
    "train_encoder",
]
