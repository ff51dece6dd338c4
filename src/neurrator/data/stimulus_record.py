"""A small JSON record saying how to reload a run's :class:`Stimulus`, verified by content hash.

Frames are not copied into the run folder: the record stores the arguments of
:func:`neurrator.data.stimulus.load_stimulus` and the SHA-256 of the frames, and reloading
refuses frames that changed since (e.g. an edited template file).
"""

from __future__ import annotations

import json
from pathlib import Path

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.data.types import Stimulus

RECORD_FORMAT = "neurrator-stimulus-record/1"


def stimulus_record(
    stimulus: Stimulus,
    *,
    stimulus_dir: str | Path | None = None,
    captions_json: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> dict:
    """The JSON-ready record of ``stimulus`` loaded with these ``load_stimulus`` arguments."""
    absolute = lambda p: None if p is None else str(Path(p).resolve())
    return {
        "format": RECORD_FORMAT,
        "name": stimulus.name,
        "stimulus_dir": absolute(stimulus_dir),
        "captions_json": absolute(captions_json),
        "cache_dir": absolute(cache_dir),
        "content_hash": stimulus.content_hash,
        "shape": list(stimulus.frames.shape),
        "frame_rate": stimulus.frame_rate,
        "is_stand_in": stimulus.is_stand_in,
        "description": stimulus.description,
    }


def save_stimulus_record(path: str | Path, stimulus: Stimulus, **load_args) -> Path:
    """Write :func:`stimulus_record` to ``path`` atomically."""
    return atomic_write_json(path, stimulus_record(stimulus, **load_args))


def load_stimulus_record(path: str | Path) -> Stimulus:
    """Reload the stimulus a record describes; :class:`InputError` if missing, corrupt or changed."""
    from neurrator.data.stimulus import load_stimulus

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "stimulus record not found")
    try:
        rec = json.loads(path.read_text())
        name, expected = rec["name"], rec["content_hash"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"corrupt stimulus record: {exc}") from None
    opt = lambda key: None if rec.get(key) is None else Path(rec[key])
    stimulus = load_stimulus(name, opt("stimulus_dir"), opt("captions_json"), cache_dir=opt("cache_dir"))
    if stimulus.content_hash != expected:
        raise InputError(
            path,
            f"the frames of {name} changed since ingest (hash {stimulus.content_hash[:12]}… ≠ recorded {expected[:12]}…); re-run ingest",
        )
    return stimulus
