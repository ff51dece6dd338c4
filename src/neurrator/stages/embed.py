"""``neurrator embed``: patch targets of the run's stimulus in the configured vision space.

Reads ``ingest/stimulus.json`` (which stimulus, verified by content hash), builds the vision
space from ``config.vision``, and fetches or computes the targets in the shared cache
``config.cache_dir`` (one entry per space id × stimulus hash). Writes ``embed/targets.json``,
a pointer to that entry plus its ``SpaceInfo``; later stages open it with
:func:`neurrator.runio.read_targets`.
For a natural-scenes run the stimulus is the scene bank, so the bank is what gets embedded.
"""

from __future__ import annotations

import time
from pathlib import Path

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.threads import thread_limit
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.vision import build_space
from neurrator.vision.cache import MANIFEST_FILE, entry_dir, get_or_build_targets


def run(run: RunDir, config: RunConfig) -> StageResult:
    stimulus = runio.read_stimulus(run)
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
    cache_hit = manifest_before == _read_bytes(entry / MANIFEST_FILE)
    pointer = runio.write_targets(run, targets, entry, stimulus=stimulus.name, cache_hit=cache_hit,
                                  seconds=round(seconds, 3))
    if info.is_stand_in:
        run.mark_stand_in("vision_space", info.description)
    label = " (offline stand-in, not CLIP)" if info.is_stand_in else ""
    return StageResult(
        summary=(
            f"{stimulus.n_frames} frames of {stimulus.name} → {info.space_id}{label}: "
            f"{'×'.join(map(str, targets.patches.shape))} float16 ({size_mb:.0f} MB) "
            f"{'from the cache' if cache_hit else 'computed'} in {seconds:.1f} s"
        ),
        outputs=[str(pointer), str(entry)],
    )


def _read_bytes(path: Path) -> bytes | None:
    """A file's bytes, or ``None`` if absent; an unchanged manifest means the entry was reused."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None

