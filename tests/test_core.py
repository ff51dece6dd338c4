import json
import os

import numpy as np
import pytest

from neurrator.core.errors import InputError, NeurratorError
from neurrator.core.io import atomic_dir, atomic_path, atomic_write_json, sha256_array
from neurrator.core.registry import Registry
from neurrator.core.sampling import evenly_spaced, seeded_subset


def test_atomic_write_json_roundtrip(tmp_path):
    path = tmp_path / "a" / "b.json"
    atomic_write_json(path, {"x": np.int64(3), "y": np.arange(2)})
    assert json.loads(path.read_text()) == {"x": 3, "y": [0, 1]}
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            np.save(tmp, np.zeros(3))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_replaces_whole(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "one").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "two").write_text("2")
            raise ValueError
    assert sorted(os.listdir(target)) == ["one"]
    assert [p.name for p in tmp_path.iterdir()] == ["d"]


def test_sha256_array_sensitive_to_dtype_and_content():
    a = np.arange(6, dtype=np.uint8)
    assert sha256_array(a) == sha256_array(a.copy())
    assert sha256_array(a) != sha256_array(a.astype(np.int16))
    b = a.copy()
    b[0] = 9
    assert sha256_array(a) != sha256_array(b)


def test_registry_unknown_name_lists_choices():
    reg: Registry = Registry("thing")
    reg.register("a")(lambda: 1)
    assert reg.create("a") == 1
    with pytest.raises(NeurratorError, match="choose one of: a"):
        reg.create("b")


def test_input_error_names_file():
    err = InputError("/x/y.nwb", "not an HDF5 file")
    assert str(err) == "/x/y.nwb: not an HDF5 file"


def test_evenly_spaced():
    assert evenly_spaced(10, 0).tolist() == list(range(10))
    assert evenly_spaced(10, None).tolist() == list(range(10))
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9]  # np.linspace(0, 9, 3) rounded
    assert evenly_spaced(5, 50).tolist() == list(range(5))


def test_seeded_subset_is_sorted_reproducible_and_capped():
    assert seeded_subset(5, None, 0).tolist() == [0, 1, 2, 3, 4]
    rows = seeded_subset(100, 10, seed=3)
    assert len(rows) == 10 and np.all(np.diff(rows) > 0)
    assert rows.tolist() == seeded_subset(100, 10, seed=3).tolist() != seeded_subset(100, 10, seed=4).tolist()
