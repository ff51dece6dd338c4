"""Splits, unit subsets and dataset/split I/O."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurrator.core.errors import InputError
from neurrator.data.toy import toy_session
from neurrator.preprocess.dataset import build_dataset
from neurrator.preprocess.io import load_dataset, load_split, save_dataset, save_split
from neurrator.preprocess.splits import SPLIT_NAMES, make_split, measure_overlap
from neurrator.preprocess.subsets import subset_mask


def _as_set(pairs):
    return {tuple(p) for p in pairs.tolist()}


@pytest.mark.parametrize("name", SPLIT_NAMES)
def test_splits_are_disjoint_seeded_and_cover_test(name):
    a = make_split(name, 20, 900, seed=4)
    b = make_split(name, 20, 900, seed=4)
    np.testing.assert_array_equal(a.test, b.test)
    train, val, test = _as_set(a.train), _as_set(a.val), _as_set(a.test)
    assert train and test and not (train & val) and not (train & test) and not (val & test)
    if name != "repeats":  # frame hold-outs: no test frame is ever trained on
        assert not set(a.train[:, 1]) & set(a.test[:, 1])


def test_paper_frame_ranges():
    middle = make_split("contiguous_middle", 20, 900)
    assert set(middle.test[:, 1]) == set(range(250, 450))
    front = make_split("front_only", 20, 900)
    # Frames 195-199 are purged: their jittered windows share bins with frame 200's window.
    assert set(front.train[:, 1]) == set(range(195)) and set(front.test[:, 1]) == set(range(200, 900))
    assert front.purged_frames.tolist() == [195, 196, 197, 198, 199] and front.guard_frames == 5
    paper = make_split("front_only_paper", 20, 900)
    assert set(paper.train[:, 1]) == set(range(200)) and paper.leaky and paper.description.startswith("LEAKY")
    reps = make_split("repeats", 20, 900)
    assert len(np.unique(reps.test[:, 0])) == 2 and len(np.unique(reps.val[:, 0])) == 2
    scenes = make_split("scene_identity", 50, 118, seed=0)
    assert len(np.unique(scenes.test[:, 1])) == 12
    with pytest.raises(InputError):
        make_split("nope", 20, 900)


@pytest.fixture()
def units():
    return pd.DataFrame(
        {
            "area": ["VISp", "VISl", "LGd", "CA1", "VISp", "VISam"],
            "probe": ["probeA", "probeA", "probeB", "probeB", "probeC", "probeC"],
            "depth": [100.0, 900.0, 2000.0, 3000.0, 500.0, 600.0],
            "cell_type": np.array(["PV", None, None, None, "PV", "SST"], dtype=object),
            "session_id": ["s1", "s1", "s1", "s2", "s2", "s2"],
        },
        index=pd.Index([11, 12, 13, 14, 15, 16], name="unit_id"),
    )


def test_subset_grammar(units):
    m = lambda spec, **kw: units.index[subset_mask(units, spec, **kw)].tolist()
    assert m("all") == [11, 12, 13, 14, 15, 16]
    assert m("area:VISp") == [11, 15]
    assert m("group:higher_visual") == [12, 16]
    assert m("group:visual") == [11, 12, 13, 15, 16]
    assert m("group:hippocampus") == [14]
    assert m("cell_type:PV") == [11, 15]
    assert m("ids:12,14") == [12, 14]
    assert m("local:probeC:550-700") == [16]
    assert m("session:s2+cell_type:PV") == [15]
    picked = m("group:visual+random:3", rng=np.random.default_rng(0))
    assert len(picked) == 3 and set(picked) <= {11, 12, 13, 15, 16}


@pytest.mark.parametrize("spec", ["cell_type:VIP", "area:VISp+group:hippocampus", "group:nope", "random:2", "random:99", "local:probeA", "bogus:1"])
def test_bad_or_empty_subsets_raise(units, spec):
    with pytest.raises(InputError, match="subset"):
        subset_mask(units, spec, rng=np.random.default_rng(0) if spec != "random:2" else None)


def test_dataset_and_split_round_trip(tmp_path):
    ds = build_dataset([toy_session(n_units=12, n_repeats=5, n_frames=30)], "natural_movie_one", "repeats")
    save_dataset(ds, tmp_path / "dataset")
    back = load_dataset(tmp_path / "dataset")
    assert isinstance(back.responses, np.memmap)
    np.testing.assert_array_equal(back.responses, ds.responses)
    pd.testing.assert_index_equal(back.units.index, ds.units.index)
    assert back.units["cell_type"].tolist() == ds.units["cell_type"].tolist()
    assert back.meta["alignment"] == ds.meta["alignment"] and back.window == 20
    split = make_split("sparse_random", 5, 30, seed=2)
    save_split(split, tmp_path / "split.json")
    again = load_split(tmp_path / "split.json")
    np.testing.assert_array_equal(again.train, split.train)
    assert again.description == split.description


def test_missing_or_corrupt_dataset_files_are_named(tmp_path):
    ds = build_dataset([toy_session(n_units=5, n_repeats=4, n_frames=20)], "natural_movie_one", "repeats")
    folder = save_dataset(ds, tmp_path / "d")
    (folder / "responses.npy").write_bytes(b"garbage")
    with pytest.raises(InputError, match="responses.npy"):
        load_dataset(folder)
    (folder / "units.parquet").unlink()
    with pytest.raises(InputError, match="units.parquet"):
        load_dataset(folder)
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    (tmp_path / "s.json").write_text("{bad")
    with pytest.raises(InputError, match="s.json"):
        load_split(tmp_path / "s.json")


@pytest.mark.parametrize("name", ["repeats", "sparse_random", "contiguous_middle", "front_only", "scene_identity"])
def test_no_test_window_shares_a_bin_with_training_for_any_geometry(name):
    """Overlap is 0 for every regime, seed, window length, bins per frame and jitter (counted bin by bin)."""
    rng = np.random.default_rng(0)
    for trial in range(12):
        window, bpf, jitter = int(rng.integers(2, 41)), int(rng.choice([1, 2, 4, 30])), int(rng.integers(0, 6))
        test_jitter = int(rng.integers(0, 3))
        n_frames = int(rng.integers(60, 300))
        try:
            split = make_split(name, 12, n_frames, seed=trial, heldout_fraction=0.05, window=window, bins_per_frame=bpf,
                               jitter=jitter, test_jitter=test_jitter)
        except InputError:  # a geometry that leaves no training frame is refused, never leaky
            continue
        assert split.overlap == 0.0 and not split.leaky
        assert split.guard_frames == (window - 1 + jitter + test_jitter) // bpf
        measured = measure_overlap(np.concatenate([split.train, split.val]), split.test, window=window,
                                   bins_per_frame=bpf, jitter=jitter, test_jitter=test_jitter)
        assert measured == 0.0
        if split.guard_frames and name not in ("repeats",):
            # The guard is tight: putting back one purged frame creates overlap.
            purged = split.purged_frames
            if len(purged):
                extra = np.array([[split.train[0, 0], purged[0]]])
                assert measure_overlap(np.concatenate([split.train, extra]), split.test, window=window,
                                       bins_per_frame=bpf, jitter=jitter, test_jitter=test_jitter) > 0


def test_paper_definitions_are_leaky_as_measured_in_the_issue():
    """The paper's definitions at 20-bin windows, 4 bins/frame, ±2 bins (seeds 0-2)."""
    for seed in range(3):
        assert make_split("sparse_random_paper", 20, 900, seed).overlap == 1.0
        assert make_split("contiguous_middle_paper", 20, 900, seed).overlap == pytest.approx(0.05)
        assert make_split("front_only_paper", 20, 900, seed).overlap == pytest.approx(5 / 700)
        assert make_split("sparse_random", 20, 900, seed).overlap == 0.0


def test_split_round_trips_with_its_guard_record(tmp_path):
    from neurrator.preprocess.io import load_split, save_split

    split = make_split("contiguous_middle", 20, 900, seed=1)
    save_split(split, tmp_path / "s.json")
    back = load_split(tmp_path / "s.json")
    assert back.leakage() == split.leakage() and back.overlap == 0.0 and back.guard_frames == 5
    np.testing.assert_array_equal(back.purged_frames, split.purged_frames)
