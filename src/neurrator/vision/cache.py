"""Patch-target cache: vision-space embeddings of a stimulus, computed once and memory-mapped.

One entry per (space id, stimulus content hash), under ``<cache_dir>/targets/<key>/``:

* ``patches.npy``: (n_frames, n_patches, dim) float16, a plain ``.npy`` opened with ``mmap_mode="r"``,
  so training reads only the rows it needs (ViT-L/14-336 on natural_movie_one is 1.06 GB).
* ``manifest.json``: shape, dtype, ``SpaceInfo``, stimulus hash, file size, SHA-256 of the array
  bytes and ``"complete": true``.

An entry is built in a private ``.<key>.building-<pid>`` folder, batch by batch (the array goes to
disk through ordinary file writes, so peak memory is one batch, not the cache), the manifest is
written last, and the folder is renamed into place. A reader accepts an entry only if the manifest
says complete and the file matches its size (and, by default, its checksum); anything else, e.g.
an interrupted or truncated build, is discarded and rebuilt, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_json
from neurrator.data.types import Stimulus
from neurrator.vision.base import PatchTargets, SpaceInfo, VisionSpace

log = logging.getLogger(__name__)

FORMAT = "neurrator-patch-targets-v1"
ARRAY_FILE = "patches.npy"
MANIFEST_FILE = "manifest.json"
_CHUNK = 1 << 24  # bytes per read while checksumming (keeps verification memory flat)

Verify = Literal["checksum", "size"]


def entry_dir(cache_dir: str | Path, space_id: str, stimulus_hash: str) -> Path:
    """The cache folder of (``space_id``, ``stimulus_hash``); a readable, file-system-safe name."""
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", space_id).strip("_")[:80]
    digest = hashlib.sha256(space_id.encode()).hexdigest()[:8]
    return Path(cache_dir) / "targets" / f"{readable}-{digest}__{stimulus_hash[:16]}"


def _checksum(path: Path, offset: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def check_entry(entry: str | Path, *, verify: Verify = "checksum") -> str | None:
    """Why the cache entry at ``entry`` is unusable, or ``None`` if it is intact."""
    entry = Path(entry)
    manifest_path, array_path = entry / MANIFEST_FILE, entry / ARRAY_FILE
    if not manifest_path.is_file():
        return "no manifest (build never finished)"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "manifest is not valid JSON"
    if manifest.get("format") != FORMAT or manifest.get("complete") is not True:
        return "manifest does not mark a complete entry of this format"
    if not array_path.is_file():
        return f"{ARRAY_FILE} is missing"
    if array_path.stat().st_size != manifest.get("file_size"):
        return f"{ARRAY_FILE} has {array_path.stat().st_size} bytes, manifest says {manifest.get('file_size')}"
    try:
        header = np.load(array_path, mmap_mode="r")
    except (ValueError, OSError) as exc:
        return f"{ARRAY_FILE} is not a readable .npy: {exc}"
    if list(header.shape) != manifest.get("shape") or str(header.dtype) != manifest.get("dtype"):
        return f"{ARRAY_FILE} is {header.dtype}{header.shape}, manifest says {manifest.get('dtype')}{manifest.get('shape')}"
    if verify == "checksum" and _checksum(array_path, header.offset) != manifest.get("sha256"):
        return f"{ARRAY_FILE} does not match its checksum"
    return None


def load_targets(entry: str | Path, *, verify: Verify = "checksum") -> PatchTargets:
    """Open a cache entry read-only as memory-mapped :class:`PatchTargets`.

    Raises :class:`InputError` naming the entry if it is incomplete or corrupted.
    """
    entry = Path(entry)
    problem = check_entry(entry, verify=verify)
    if problem is not None:
        raise InputError(entry, f"unusable patch-target cache entry: {problem}")
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    return PatchTargets(
        patches=np.load(entry / ARRAY_FILE, mmap_mode="r"),
        info=SpaceInfo.from_dict(manifest["space"]),
        stimulus_hash=manifest["stimulus_hash"],
    )


def _remove_abandoned_builds(entry: Path) -> None:
    """Delete build folders of this entry left behind by processes that no longer exist."""
    for folder in entry.parent.glob(f".{entry.name}.building-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def build_targets(
    space: VisionSpace,
    frames: np.ndarray,
    entry: Path,
    *,
    stimulus_hash: str,
    batch_size: int = 32,
    progress: bool = False,
    extra: dict | None = None,
) -> Path:
    """Embed ``frames`` with ``space`` into a new cache entry at ``entry`` (replacing any old one).

    Parameters
    ----------
    frames : (n_frames, height, width) uint8.
    extra : additional fields for the manifest (e.g. stimulus name).

    Returns
    -------
    ``entry``, now holding a complete, verified-on-write entry.
    """
    from tqdm.auto import tqdm

    info = space.info
    shape = (len(frames), info.n_patches, info.dim)
    entry.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(entry)
    building = entry.with_name(f".{entry.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    t0 = time.perf_counter()
    try:
        array_path = building / ARRAY_FILE
        # open_memmap writes a correct .npy header and sizes the file; rows are then streamed in
        # with plain writes so that written pages never count against this process's memory.
        header = np.lib.format.open_memmap(array_path, mode="w+", dtype=np.float16, shape=shape)
        offset = header.offset
        del header
        digest = hashlib.sha256()
        with open(array_path, "r+b") as fh:
            fh.seek(offset)
            starts = range(0, len(frames), batch_size)
            for start in tqdm(starts, desc=f"embed {info.space_id[:40]}", unit="batch", disable=not progress):
                batch = space.embed(frames[start : start + batch_size], batch_size=batch_size)
                rows = np.ascontiguousarray(batch.numpy(), dtype=np.float16)
                if rows.shape != (min(batch_size, len(frames) - start), *shape[1:]):
                    raise ValueError(f"space {info.space_id} returned {rows.shape}, expected rows of {shape[1:]}")
                if not np.isfinite(rows).all():
                    raise ValueError(f"space {info.space_id} produced values that overflow float16")
                data = memoryview(rows).cast("B")
                fh.write(data)
                digest.update(data)
            fh.flush()
            os.fsync(fh.fileno())
        atomic_write_json(
            building / MANIFEST_FILE,  # written last: its presence marks the entry complete
            {
                "format": FORMAT,
                "complete": True,
                "space": info.to_dict(),
                "stimulus_hash": stimulus_hash,
                "shape": list(shape),
                "dtype": "float16",
                "file": ARRAY_FILE,
                "file_size": array_path.stat().st_size,
                "sha256": digest.hexdigest(),
                "build_seconds": round(time.perf_counter() - t0, 3),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **(extra or {}),
            },
        )
        if entry.exists():
            shutil.rmtree(entry)
        os.replace(building, entry)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return entry


def get_or_build_targets(
    space: VisionSpace,
    stimulus: Stimulus,
    cache_dir: str | Path,
    *,
    batch_size: int = 32,
    progress: bool = False,
    verify: Verify = "checksum",
) -> PatchTargets:
    """Patch targets of ``stimulus`` in ``space``, from the cache or computed into it.

    Parameters
    ----------
    space : any :class:`VisionSpace`; its ``info.space_id`` keys the cache.
    stimulus : its ``content_hash`` keys the cache.
    cache_dir : root of the cache (shared between runs).
    verify : ``"checksum"`` re-hashes a found entry (reads it once); ``"size"`` checks sizes only.

    Returns
    -------
    PatchTargets with ``patches`` (n_frames, n_patches, dim) float16, memory-mapped read-only.
    """
    entry = entry_dir(cache_dir, space.info.space_id, stimulus.content_hash)
    problem = check_entry(entry, verify=verify)
    if problem is None:
        targets = load_targets(entry, verify="size")
        if targets.info == space.info and targets.stimulus_hash == stimulus.content_hash:
            return targets
        problem = "manifest describes a different space or stimulus"
    if entry.exists():
        log.warning("rebuilding patch-target cache entry %s: %s", entry, problem)
    build_targets(
        space,
        stimulus.frames,
        entry,
        stimulus_hash=stimulus.content_hash,
        batch_size=batch_size,
        progress=progress,
        extra={"stimulus": {"name": stimulus.name, "n_frames": stimulus.n_frames, "is_stand_in": stimulus.is_stand_in}},
    )
    return load_targets(entry, verify="size")
