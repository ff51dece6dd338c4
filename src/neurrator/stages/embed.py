"""``neurrator embed``: patch targets of the run's stimulus in the configured vision space.

Reads ``ingest/stimulus.json`` (which stimulus, verified by content hash), builds the vision
space from ``config.vision``, and fetches or computes the targets in the shared cache
``config.cache_dir`` (one entry per space id × stimulus hash). Writes ``embed/targets.json``,
a pointer to that entry plus its ``SpaceInfo``; later stages open it with :func:`read_targets`.
For a natural-scenes run the stimulus is the scene bank, so the bank is what gets embedded.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.core.threads import thread_limit
from neurrator.data import load_stimulus_record
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.vision import build_space
from neurrator.vision.base import PatchTargets
from neurrator.vision.cache import (
    MANIFEST_FILE,
    Verify,
    entry_dir,
    get_or_build_targets,
    load_targets,
)

TARGETS_FILE = "targets.json"


def run(run: RunDir, config: RunConfig) -> StageResult:
    stimulus = load_stimulus_record(run.require("ingest", "stimulus.json"))
    space = build_space(config.vision)
    info = space.info
    entry = entry_dir(config.cache_dir, info.space_id, stimulus.content_hash)
    manifest_before = _read_bytes(entry / MANIFEST_FILE)
    t0 = time.perf_counter()
    with thread_limit(config.vision.num_threads):
        targets = get_or_build_targets(
            space, stimulus, config.cache_dir, batch_size=config.vision.batch_size, progress=config.vision.progress
        )
    seconds = time.perf_counter() - t0
    size_mb = targets.patches.nbytes / 1e6
    pointer = run.stage_dir("embed") / TARGETS_FILE
    record = {
        "entry": str(entry.resolve()),
        "space": info.to_dict(),
        "stimulus": stimulus.name,
        "stimulus_hash": stimulus.content_hash,
        "shape": list(targets.patches.shape),
        "dtype": str(targets.patches.dtype),
        "is_stand_in": info.is_stand_in,
        "cache_hit": manifest_before == _read_bytes(entry / MANIFEST_FILE),
        "seconds": round(seconds, 3),
    }
    atomic_write_json(pointer, record)
    if info.is_stand_in:
        run.mark_stand_in("vision_space", info.description)
    label = " (offline stand-in, not CLIP)" if info.is_stand_in else ""
    return StageResult(
        summary=(
            f"{stimulus.n_frames} frames of {stimulus.name} → {info.space_id}{label}: "
            f"{'×'.join(map(str, targets.patches.shape))} float16 ({size_mb:.0f} MB) "
            f"{'from the cache' if record['cache_hit'] else 'computed'} in {seconds:.1f} s"
        ),
        outputs=[str(pointer), str(entry)],
    )


def _read_bytes(path: Path) -> bytes | None:
    """A file's bytes, or ``None`` if absent; an unchanged manifest means the entry was reused."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def read_targets(run: RunDir, *, verify: Verify = "size") -> PatchTargets:
    """The run's patch targets, memory-mapped, as pointed to by ``embed/targets.json``.

    Raises :class:`InputError` if the pointer is unreadable or the cache entry it names is gone,
    damaged, or was computed from other frames than the pointer records.
    """
    pointer = run.require("embed", TARGETS_FILE)
    try:
        record = json.loads(pointer.read_text())
        entry, stimulus_hash = record["entry"], record["stimulus_hash"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(pointer, f"corrupt targets pointer: {exc}") from None
    targets = load_targets(entry, verify=verify)
    if targets.stimulus_hash != stimulus_hash:
        raise InputError(pointer, "the cache entry holds targets of other frames; re-run `neurrator embed`")
    return targets
