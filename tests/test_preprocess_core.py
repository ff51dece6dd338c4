"""Binning, dataset building, z-scoring and pseudo-mouse alignment."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.data.toy import toy_session
from neurrator.preprocess.binning import bin_spikes, histogram_reference, presentation_grid
from neurrator.preprocess.dataset import align_sessions, build_dataset, rezscore, select_units
from neurrator.preprocess.splits import make_split


@pytest.fixture(scope="module")
def session():
    return toy_session(n_units=30, n_repeats=6, n_frames=60, n_scenes=8, seed=3)


def test_vectorised_binning_matches_histogram_loop(session):
    starts = presentation_grid(session.presentations["natural_movie_one"], 60)
    fast = bin_spikes(session.spikes, starts)
    slow = histogram_reference(session.spikes, starts)
    assert fast.shape == slow.shape == (6, 240, 30)
    np.testing.assert_array_equal(fast, slow)
    assert fast.sum() > 1000


def test_scene_binning_matches_histogram_loop(session):
    starts = presentation_grid(session.presentations["natural_scenes"], 8)
    assert starts.shape == (3, 8)  # blanks (frame -1) are not part of the grid
    fast = bin_spikes(session.spikes, starts, bins_per_frame=30)
    slow = histogram_reference(session.spikes, starts, bins_per_frame=30)
    np.testing.assert_array_equal(fast, slow)


def test_bins_are_aligned_to_each_presentation():
    """A spike 1 ms after a frame's own start lands in that frame's first bin, despite jitter."""
    s = toy_session(n_units=1, n_repeats=2, n_frames=5, jitter_s=3e-3, seed=1)
    starts = presentation_grid(s.presentations["natural_movie_one"], 5)
    spikes = dataclasses.replace(s.spikes, times=np.sort(starts.ravel() + 0.001), offsets=np.array([0, 10]))
    counts = bin_spikes(spikes, starts, pad=2)
    assert counts.shape == (2, 5 * 4 + 4, 1)
    np.testing.assert_array_equal(counts[:, 2:-2:4, 0], np.ones((2, 5)))
    assert counts.sum() == 10


def test_build_dataset_zscores_with_training_samples_only(session):
    split = make_split("repeats", 6, 60, seed=0, val_fraction=0.2, test_fraction=0.2)
    ds = build_dataset([session], "natural_movie_one", split)
    assert ds.responses.shape == (6, 60 * 4 + 40, 30) and ds.responses.dtype == np.float32
    assert ds.bins_per_frame == 4 and ds.pad == 20 and ds.n_frames == 60
    train = ds.responses[split.train_repeats, ds.pad : -ds.pad]
    np.testing.assert_allclose(train.mean(axis=(0, 1)), 0, atol=1e-4)
    active = ds.zscore.std != 1
    np.testing.assert_allclose(train.std(axis=(0, 1))[active], 1, atol=1e-3)
    assert not ds.responses[:, : ds.pad].any() and not ds.responses[:, -ds.pad :].any()
    for col in ("area", "probe", "depth", "cell_type", "session_id"):
        assert col in ds.units
    w = ds.windows(split.test[:5])
    assert w.shape == (5, 20, 30)


def test_pseudo_mouse_stacks_sessions_and_reports_alignment(session):
    other = toy_session(n_units=10, n_repeats=5, n_frames=60, seed=9, session_id="b", first_unit_id=9000)
    ds = build_dataset([session, other], "natural_movie_one", "repeats")
    assert ds.n_units == 40 and ds.n_repeats == 5  # repeats every session has
    assert set(ds.units["session_id"]) == {"toy0", "b"}
    assert ds.meta["alignment"]["max_error_ms"] < 8.3


def test_misaligned_session_is_refused(session):
    shifted = session.presentations["natural_movie_one"].copy()
    late = shifted["frame"] >= 30
    shifted.loc[late, "start_time"] += 0.02  # 20 ms = 2.4 bins within the repeat
    bad = dataclasses.replace(session, session_id="late", presentations={"natural_movie_one": shifted})
    bad = dataclasses.replace(bad, units=bad.units.set_axis(bad.units.index + 100_000), spikes=dataclasses.replace(bad.spikes, unit_ids=bad.spikes.unit_ids + 100_000))
    with pytest.raises(InputError, match="misaligned"):
        align_sessions([session, bad], "natural_movie_one")


def test_duplicate_unit_ids_cannot_be_pooled(session):
    with pytest.raises(InputError, match="not unique"):
        build_dataset([session, session], "natural_movie_one", "repeats")


def test_missing_stimulus_is_an_input_error(session):
    with pytest.raises(InputError, match="natural_movie_three"):
        build_dataset([session], "natural_movie_three", "repeats")


def test_scene_dataset_and_rezscore(session):
    ds = build_dataset([session], "natural_scenes", "scene_identity", n_frames=8, split_seed=1)
    assert ds.bins_per_frame == 30 and ds.responses.shape == (3, 8 * 30 + 40, 30)
    # the window of an image stays inside its own presentation
    start = ds.window_start(np.arange(8))
    assert (start - ds.pad >= np.arange(8) * 30).all() and (start - ds.pad + 20 <= np.arange(1, 9) * 30).all()
    other = make_split("repeats", 3, 8, seed=0, val_fraction=0.34, test_fraction=0.34)
    re = rezscore(ds, other)
    train = re.responses[other.train_repeats, re.pad : -re.pad]
    np.testing.assert_allclose(train.mean(axis=(0, 1)), 0, atol=1e-4)
    sub = select_units(ds, np.arange(30) < 5)
    assert sub.n_units == 5 and len(sub.zscore.mean) == 5


def test_presentation_locator_matches_binary_search():
    from neurrator.preprocess.binning import _PresentationLocator

    rng = np.random.default_rng(0)
    starts = np.sort(rng.uniform(0, 50, 3000))
    starts = starts[np.r_[True, np.diff(starts) > 1e-9]]
    t_end = starts[-1] + 0.05
    times = np.r_[rng.uniform(starts[0], t_end, 200_000), starts, np.nextafter(starts, np.inf)]
    times = times[times < t_end]
    locate = _PresentationLocator(starts, t_end, 1 / 120)
    assert locate.table is not None
    np.testing.assert_array_equal(locate(times), np.searchsorted(starts, times, side="right") - 1)
