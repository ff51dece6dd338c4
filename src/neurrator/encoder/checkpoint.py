"""Trained-encoder checkpoints: ``checkpoint.safetensors`` (weights) + ``checkpoint.json``.

The JSON says what the weights mean — which units in which column order, the z-score
statistics their inputs were normalised with, the vision space and target shape they predict,
the architecture and training config, the seed, the split, the metrics and the code version —
so that loading against a session with other units or another vision space is a clear
:class:`InputError` instead of a silent mis-mapping. Nothing is pickled.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_bytes, atomic_write_json
from neurrator.encoder.model import EncoderModelConfig, NeurratorDualTower, NeurratorPatches, NeurratorRetrieval
from neurrator.vision.base import SpaceInfo

WEIGHTS_FILE = "checkpoint.safetensors"
META_FILE = "checkpoint.json"
FORMAT = "neurrator-encoder"
FORMAT_VERSION = 1


def code_version() -> dict:
    """Package version (and the version of the checkpoint format)."""
    try:
        version = metadata.version("neurrator")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        from neurrator import __version__ as version
    return {"neurrator": version, "torch": torch.__version__, "format_version": FORMAT_VERSION}


@dataclass
class CheckpointMeta:
    """Everything in ``checkpoint.json``.

    Attributes
    ----------
    kind : ``"patches"``, ``"retrieval"`` or ``"dina"``.
    model_config : :class:`EncoderModelConfig` as a dict.
    encoder_config : the resolved ``EncoderConfig`` the model was trained with.
    unit_ids : unit ids in input-column order.
    zscore_mean, zscore_std : (n_units,) statistics of the training repeats.
    space : :class:`SpaceInfo` of the targets.
    target_shape : (n_patches, dim).
    seed, split : seed and split name (with sample counts).
    metrics : best validation metric, epochs, seconds, stop reason, mean-patch baseline, ...
    history : per-epoch log.
    vocabulary : training frames, in class order (retrieval; DINA: its validation bank).
    """

    kind: str
    model_config: dict
    encoder_config: dict
    unit_ids: list
    zscore_mean: list[float]
    zscore_std: list[float]
    space: dict
    target_shape: list[int]
    seed: int
    split: dict
    metrics: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    vocabulary: list[int] = field(default_factory=list)
    code_version: dict = field(default_factory=code_version)

    @property
    def space_info(self) -> SpaceInfo:
        return SpaceInfo.from_dict(self.space)


def save_checkpoint(folder: str | Path, model: torch.nn.Module, meta: CheckpointMeta) -> list[Path]:
    """Write weights and metadata into ``folder`` (each file atomically). Returns both paths."""
    folder = Path(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = atomic_write_bytes(folder / WEIGHTS_FILE, save_safetensors(tensors, metadata={"format": FORMAT}))
    meta_path = atomic_write_json(folder / META_FILE, {"format": FORMAT, **meta.__dict__})
    return [weights, meta_path]


def _same_ids(a, b) -> bool:
    return len(a) == len(b) and all(str(x) == str(y) for x, y in zip(a, b, strict=True))


def check_units(meta: CheckpointMeta, unit_ids, *, source: str | Path | None) -> None:
    """:class:`InputError` unless ``unit_ids`` are the checkpoint's units in the same order."""
    unit_ids = list(np.asarray(unit_ids).tolist())
    if _same_ids(meta.unit_ids, unit_ids):
        return
    trained = {str(u) for u in meta.unit_ids}
    given = {str(u) for u in unit_ids}
    if trained == given:
        problem = "has the same units as the checkpoint but in a different column order"
    else:
        problem = (f"has {len(unit_ids)} units, the checkpoint {len(meta.unit_ids)}; "
                   f"{len(given - trained)} are unknown to it and {len(trained - given)} of its units are missing")
    raise InputError(source, f"session does not match the encoder checkpoint: it {problem}")


def check_session(meta, dataset, *, what: str = "encoder") -> None:
    """:class:`InputError` unless ``dataset`` has the checkpoint's units (same order) and was
    z-scored with its statistics (``meta``: anything with ``unit_ids``, ``zscore_mean``, ``zscore_std``)."""
    check_units(meta, dataset.unit_ids, source=None)
    same = np.allclose(dataset.zscore.mean, meta.zscore_mean, rtol=1e-5, atol=1e-6) and np.allclose(
        dataset.zscore.std, meta.zscore_std, rtol=1e-5, atol=1e-6)
    if not same:
        raise InputError(None, f"session was z-scored with other statistics than the {what} was trained on "
                               "(a different split or ingest); re-ingest with the training split")


def check_space(meta: CheckpointMeta, space: SpaceInfo | str, *, source: str | Path | None) -> None:
    """:class:`InputError` unless ``space`` (a SpaceInfo or a space id) is the checkpoint's."""
    space_id = space if isinstance(space, str) else space.space_id
    if space_id != meta.space["space_id"]:
        raise InputError(source, f"the encoder was trained for vision space {meta.space['space_id']!r}, "
                                 f"not {space_id!r}")
    if not isinstance(space, str) and [space.n_patches, space.dim] != list(meta.target_shape):
        raise InputError(source, f"target shape {meta.target_shape} does not match the space's "
                                 f"{[space.n_patches, space.dim]}")


def load_checkpoint(
    folder: str | Path, *, expect_units=None, expect_space: SpaceInfo | str | None = None
) -> tuple[torch.nn.Module, CheckpointMeta]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    expect_units : unit ids (in column order) of the session it will be applied to.
    expect_space : the vision space (or its id) predictions will be compared with / narrated in.

    Raises :class:`InputError` for missing or corrupt files and for unit or space mismatches.
    """
    folder = Path(folder)
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise InputError(path, "missing; train an encoder first (`neurrator train`)")
    try:
        raw = json.loads(meta_path.read_text())
        if raw.pop("format", None) != FORMAT:
            raise ValueError("not a neurrator encoder checkpoint")
        meta = CheckpointMeta(**raw)
        model_config = EncoderModelConfig.from_dict(meta.model_config)
    except (ValueError, TypeError, KeyError) as exc:
        raise InputError(meta_path, f"corrupt checkpoint metadata: {exc}") from None
    if expect_units is not None:
        check_units(meta, expect_units, source=meta_path)
    if expect_space is not None:
        check_space(meta, expect_space, source=meta_path)
    model = {"retrieval": NeurratorRetrieval, "dina": NeurratorDualTower}.get(meta.kind, NeurratorPatches)(model_config)
    try:
        tensors = load_safetensors(weights_path.read_bytes())
        model.load_state_dict(tensors)
    except Exception as exc:  # noqa: BLE001 - safetensors and load_state_dict raise several types
        raise InputError(weights_path, f"weights do not fit the checkpoint's architecture: {exc}") from None
    model.eval()
    return model, meta
