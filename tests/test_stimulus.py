"""The embedded demo stimulus, Allen template loading and user captions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from neurrator.core.errors import InputError
from neurrator.data.stimulus import (
    demo_definition,
    load_stimulus,
    read_captions_json,
    render_demo_movie,
)


@pytest.fixture(scope="module")
def movie():
    return load_stimulus("natural_movie_one")


def test_demo_movie_is_nm1_shaped_stand_in(movie):
    assert movie.frames.shape == (900, 304, 608)
    assert movie.frames.dtype == np.uint8
    assert movie.frame_rate == 30.0
    assert movie.is_stand_in
    assert movie.shot_of_frame.shape == (900,)
    assert len(np.unique(movie.shot_of_frame)) >= 10
    assert movie.frames.std() > 20  # real image content, not a flat field


def test_demo_movie_has_cuts_pans_and_zooms(movie):
    f = movie.frames[:, ::4, ::4].astype(np.float32)
    step = np.abs(np.diff(f, axis=0)).mean(axis=(1, 2))
    cut = np.diff(movie.shot_of_frame) != 0
    # Consecutive frames within a shot move a little (camera motion) but much less than across a cut.
    assert np.all(step[~cut] > 0)
    assert np.median(step[cut]) > 5 * np.median(step[~cut])


def test_every_frame_has_its_shots_captions(movie):
    definition = demo_definition()
    shot_names = [name for name, _ in definition["movies"]["natural_movie_one"]["shots"]]
    assert sorted(movie.captions) == list(range(900))
    for frame in (0, 450, 899):
        shot = shot_names[movie.shot_of_frame[frame]]
        assert movie.captions[frame] == definition["shots"][shot]["captions"]
    for shot in definition["shots"].values():
        assert len(shot["captions"]) >= 3 and len(set(shot["captions"])) == len(shot["captions"])


def test_demo_movie_is_deterministic(movie):
    frames, shot_of_frame, _ = render_demo_movie("natural_movie_one")
    assert np.array_equal(frames, movie.frames)
    assert np.array_equal(shot_of_frame, movie.shot_of_frame)


def test_demo_scene_bank():
    scenes = load_stimulus("natural_scenes")
    n = scenes.n_frames
    assert n >= 20 and scenes.frame_rate is None and scenes.is_stand_in
    assert sorted(scenes.captions) == list(range(n))
    assert all(len(c) >= 3 for c in scenes.captions.values())
    flat = scenes.frames.reshape(n, -1).astype(np.float32)
    distances = np.abs(flat[:, None, :1000] - flat[None, :, :1000]).mean(-1) + np.eye(n) * 1e9
    assert distances.min() > 1.0  # every image is distinct


def test_demo_frames_memoised_on_disk(tmp_path):
    first = load_stimulus("natural_scenes", cache_dir=tmp_path)
    memo = next((tmp_path / "demo_stimuli").rglob("natural_scenes.npy"))
    assert np.array_equal(np.load(memo), first.frames)
    memo.write_bytes(b"garbage")  # a damaged memo is re-rendered, never used
    from neurrator.data.stimulus import _memoised_frames

    again = _memoised_frames("natural_scenes", tmp_path)
    assert np.array_equal(again, first.frames)


def test_allen_movie_template_and_user_captions(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (12, 8, 16), dtype=np.uint8)
    np.save(tmp_path / "natural_movie_1.npy", frames)  # AllenSDK's file name
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps({"0": ["a dark room"], "11": ["a car", "a parked car"]}))
    stim = load_stimulus("natural_movie_one", stimulus_dir=tmp_path, captions_json=captions)
    assert np.array_equal(stim.frames, frames)
    assert not stim.is_stand_in and stim.frame_rate == 30.0
    assert stim.captions == {0: ["a dark room"], 11: ["a car", "a parked car"]}


def test_allen_scene_tiffs(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 9, 11), dtype=np.uint8)
    for i, image in enumerate(images):
        tifffile.imwrite(tmp_path / f"natural_scene_{i}.tiff", image)
    stim = load_stimulus("natural_scenes", stimulus_dir=tmp_path)
    assert np.array_equal(stim.frames, images) and stim.frame_rate is None
    (tmp_path / "natural_scene_1.tiff").unlink()
    with pytest.raises(InputError, match="missing"):
        load_stimulus("natural_scenes", stimulus_dir=tmp_path)


def test_missing_template_names_folder(tmp_path):
    with pytest.raises(InputError, match="natural_movie_one.npy"):
        load_stimulus("natural_movie_one", stimulus_dir=tmp_path)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"x": ["a"]}', "not a frame index"),
        ('{"99": ["a"]}', "out of range"),
        ('{"0": []}', "non-empty list"),
        ('{"0": [3]}', "non-empty list"),
    ],
)
def test_bad_captions_json_names_the_file(tmp_path, text, problem):
    path = tmp_path / "caps.json"
    path.write_text(text)
    with pytest.raises(InputError, match=problem) as info:
        read_captions_json(path, n_frames=10)
    assert info.value.path == path


def test_unknown_stimulus_name():
    with pytest.raises(InputError, match="unknown stimulus"):
        load_stimulus("natural_movie_two")


@pytest.mark.slow
def test_demo_movie_three():
    movie = load_stimulus("natural_movie_three")
    assert movie.frames.shape == (3600, 304, 608) and movie.frame_rate == 30.0 and movie.is_stand_in
    assert len(np.unique(movie.shot_of_frame)) >= 40 and sorted(movie.captions) == list(range(3600))
