"""Patch-target cache: built once, memory-mapped, and never trusted when damaged."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from neurrator.core.errors import InputError
from neurrator.data.types import Stimulus
from neurrator.vision.base import SpaceInfo
from neurrator.vision.cache import (
    ARRAY_FILE,
    MANIFEST_FILE,
    check_entry,
    entry_dir,
    get_or_build_targets,
    load_targets,
)


class CountingSpace:
    """A cheap deterministic space that counts its calls and can fail after ``fail_after`` batches."""

    def __init__(self, fail_after: int | None = None):
        self.info = SpaceInfo("test/counting:v1", grid=(2, 3), dim=4, layer="pixels", is_stand_in=True)
        self.calls = 0
        self.fail_after = fail_after

    def embed(self, frames, *, batch_size=32, progress=False):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        x = torch.from_numpy(np.asarray(frames, dtype=np.float32)).mean(dim=(1, 2))
        return x[:, None, None] + torch.arange(24, dtype=torch.float32).reshape(1, 6, 4)


@pytest.fixture
def stimulus():
    frames = np.random.default_rng(0).integers(0, 256, (10, 4, 6), dtype=np.uint8)
    return Stimulus("natural_movie_one", frames, 30.0)


def expected(stimulus):
    return CountingSpace().embed(stimulus.frames).numpy().astype(np.float16)


def test_build_then_reuse(tmp_path, stimulus):
    space = CountingSpace()
    targets = get_or_build_targets(space, stimulus, tmp_path, batch_size=3)
    assert isinstance(targets.patches, np.memmap) and targets.patches.dtype == np.float16
    assert targets.patches.shape == (10, 6, 4)
    np.testing.assert_array_equal(targets.patches, expected(stimulus))
    assert targets.info == space.info and targets.stimulus_hash == stimulus.content_hash
    assert space.calls == 4  # ceil(10 / 3) batches
    again = get_or_build_targets(space, stimulus, tmp_path, batch_size=3)
    assert space.calls == 4  # served from the cache
    np.testing.assert_array_equal(again.patches, targets.patches)
    assert torch.equal(targets.batch(np.array([1, 7])), torch.from_numpy(expected(stimulus)[[1, 7]]).float())
    manifest = json.loads((entry_dir(tmp_path, space.info.space_id, stimulus.content_hash) / MANIFEST_FILE).read_text())
    assert manifest["complete"] is True and manifest["shape"] == [10, 6, 4] and manifest["dtype"] == "float16"


def test_key_includes_stimulus_and_space(tmp_path, stimulus):
    other = Stimulus("natural_movie_one", stimulus.frames[::-1].copy(), 30.0)
    a = entry_dir(tmp_path, "space-a", stimulus.content_hash)
    assert a != entry_dir(tmp_path, "space-a", other.content_hash)
    assert a != entry_dir(tmp_path, "space-b", stimulus.content_hash)
    assert a != entry_dir(tmp_path, "space/a", stimulus.content_hash) != entry_dir(tmp_path, "space:a", stimulus.content_hash)


def _damage_truncate(entry):
    path = entry / ARRAY_FILE
    path.write_bytes(path.read_bytes()[:-10])


def _damage_flip_byte(entry):
    path = entry / ARRAY_FILE
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))


def _damage_manifest_incomplete(entry):
    manifest = json.loads((entry / MANIFEST_FILE).read_text())
    (entry / MANIFEST_FILE).write_text(json.dumps({**manifest, "complete": False}))


def _damage_manifest_missing(entry):
    (entry / MANIFEST_FILE).unlink()


def _damage_manifest_garbage(entry):
    (entry / MANIFEST_FILE).write_text("{truncated")


@pytest.mark.parametrize(
    "damage",
    [_damage_truncate, _damage_flip_byte, _damage_manifest_incomplete, _damage_manifest_missing, _damage_manifest_garbage],
)
def test_damaged_entry_is_detected_and_rebuilt(tmp_path, stimulus, damage):
    space = CountingSpace()
    get_or_build_targets(space, stimulus, tmp_path, batch_size=5)
    entry = entry_dir(tmp_path, space.info.space_id, stimulus.content_hash)
    damage(entry)
    assert check_entry(entry) is not None
    with pytest.raises(InputError, match="unusable"):
        load_targets(entry)
    rebuilt = get_or_build_targets(space, stimulus, tmp_path, batch_size=5)
    assert space.calls == 4  # built twice
    np.testing.assert_array_equal(rebuilt.patches, expected(stimulus))
    assert check_entry(entry) is None


def test_size_only_check_misses_a_flipped_byte_but_checksum_catches_it(tmp_path, stimulus):
    space = CountingSpace()
    get_or_build_targets(space, stimulus, tmp_path)
    entry = entry_dir(tmp_path, space.info.space_id, stimulus.content_hash)
    _damage_flip_byte(entry)
    assert check_entry(entry, verify="size") is None
    assert "checksum" in check_entry(entry, verify="checksum")


def test_interrupted_build_leaves_no_entry(tmp_path, stimulus):
    broken = CountingSpace(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        get_or_build_targets(broken, stimulus, tmp_path, batch_size=3)
    entry = entry_dir(tmp_path, broken.info.space_id, stimulus.content_hash)
    assert not entry.exists()
    assert list(entry.parent.iterdir()) == []  # the half-written build folder is gone too
    targets = get_or_build_targets(CountingSpace(), stimulus, tmp_path, batch_size=3)
    np.testing.assert_array_equal(targets.patches, expected(stimulus))


def test_build_folder_of_a_killed_process_is_cleaned_up(tmp_path, stimulus):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    space = CountingSpace()
    entry = entry_dir(tmp_path, space.info.space_id, stimulus.content_hash)
    leftover = entry.with_name(f".{entry.name}.building-{int(dead.stdout)}")
    leftover.mkdir(parents=True)
    (leftover / ARRAY_FILE).write_bytes(b"half a file")
    get_or_build_targets(space, stimulus, tmp_path)
    assert not leftover.exists() and check_entry(entry) is None


def test_space_returning_wrong_shape_is_refused(tmp_path, stimulus):
    space = CountingSpace()
    space.info = SpaceInfo("test/wrong:v1", grid=(3, 3), dim=4, layer="pixels", is_stand_in=True)
    with pytest.raises(ValueError, match="expected rows"):
        get_or_build_targets(space, stimulus, tmp_path)
    assert not entry_dir(tmp_path, space.info.space_id, stimulus.content_hash).exists()
