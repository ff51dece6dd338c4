"""neurrator.encoder: spike windows → patch tensors of a vision space (paper §3.1, A.2).

Public API: :class:`Neurrator` (patch regression, sklearn-style), :class:`NeurratorRetriever`
(classification over training frames), the models :class:`NeurratorPatches` and
:class:`NeurratorRetrieval`, checkpoint I/O, and :func:`load_released_checkpoint` for weights
saved by the released code.
"""

from __future__ import annotations

from neurrator.core.lazy import lazy_exports

_EXPORTS = {
    "CheckpointMeta": "neurrator.encoder.checkpoint",
    "load_checkpoint": "neurrator.encoder.checkpoint",
    "save_checkpoint": "neurrator.encoder.checkpoint",
    "PRESETS": "neurrator.encoder.config",
    "EncoderConfig": "neurrator.encoder.config",
    "Neurrator": "neurrator.encoder.estimator",
    "NeurratorRetriever": "neurrator.encoder.estimator",
    "NeurratorDINA": "neurrator.encoder.estimator",
    "NeurratorDualTower": "neurrator.encoder.model",
    "mean_patch_baseline": "neurrator.encoder.estimator",
    "EncoderModelConfig": "neurrator.encoder.model",
    "NeurratorPatches": "neurrator.encoder.model",
    "NeurratorRetrieval": "neurrator.encoder.model",
    "info_nce": "neurrator.encoder.model",
    "patch_cosine": "neurrator.encoder.model",
    "patch_loss": "neurrator.encoder.model",
    "load_released_checkpoint": "neurrator.encoder.released",
    "TrainResult": "neurrator.encoder.train",
    "train_encoder": "neurrator.encoder.train",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["PRESETS", "CheckpointMeta", "EncoderConfig", "EncoderModelConfig", "Neurrator", "NeurratorDINA", "NeurratorDualTower", "NeurratorPatches", "NeurratorRetrieval", "NeurratorRetriever", "TrainResult", "info_nce", "load_checkpoint", "load_released_checkpoint", "mean_patch_baseline", "patch_cosine", "patch_loss", "save_checkpoint", "train_encoder"]
