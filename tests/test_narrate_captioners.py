"""Reference captioners: bundled and JSON captions, and BLIP-2 on a tiny model saved and reloaded
through ``from_pretrained``."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from neurrator.core.errors import InputError
from neurrator.data.stimulus import read_captions_json
from neurrator.narrate import CAPTIONERS, NarrateConfig, build_captioner
from neurrator.narrate.captioners import Blip2Captioner
from tiny_models import save_tiny_blip2


def _stimulus(captions, is_stand_in=True):
    return SimpleNamespace(name="demo_movie", captions=captions, is_stand_in=is_stand_in, n_frames=10)


def test_bundled_captions_are_looked_up_by_frame():
    captioner = build_captioner(NarrateConfig(captioner="bundled"), _stimulus({0: ["a car"], 1: ["a dog", "a puppy"]}))
    assert captioner.caption(None, np.array([1, 0])) == [["a dog", "a puppy"], ["a car"]]
    assert captioner.is_stand_in
    with pytest.raises(InputError, match=r"no caption for frame\(s\) \[7\]"):
        captioner.caption(None, np.array([7]))
    with pytest.raises(InputError, match="has no captions; give your own at ingest with data.captions_json"):
        build_captioner(NarrateConfig(captioner="bundled"), _stimulus({}))


def test_user_caption_json_reaches_the_captioner_through_the_stimulus(tmp_path):
    """The one caption key is data.captions_json: the stimulus carries the user's captions."""
    from neurrator.data.stimulus import load_stimulus

    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"0": ["a car in a garage"], "3": "a single string is one caption"}))
    np.save(tmp_path / "natural_movie_one.npy", np.zeros((10, 4, 8), np.uint8))
    stimulus = load_stimulus("natural_movie_one", tmp_path, path)
    captioner = build_captioner(NarrateConfig(captioner="bundled"), stimulus)
    assert captioner.caption(None, np.array([3, 0])) == [["a single string is one caption"], ["a car in a garage"]]
    assert not captioner.is_stand_in
    assert "captions_json" not in NarrateConfig.model_fields and "json" not in CAPTIONERS


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{oops", "not valid JSON"), ("[1, 2]", "must be a JSON object"), ('{"x": ["a"]}', "not a frame index"),
     ('{"1": []}', "non-empty list"), ('{"99": ["a"]}', "out of range")],
)
def test_bad_caption_json_names_the_file(tmp_path, content, problem):
    path = tmp_path / "bad_captions.json"
    path.write_text(content)
    with pytest.raises(InputError, match=problem) as err:
        read_captions_json(path, n_frames=10)
    assert err.value.path == path


@pytest.fixture(scope="module")
def tiny_blip2_dir(tmp_path_factory):
    return save_tiny_blip2(tmp_path_factory.mktemp("tiny-blip2"))


def test_blip2_captions_true_frames(tiny_blip2_dir):
    captioner = build_captioner(NarrateConfig(captioner="blip2", blip2_model=str(tiny_blip2_dir), batch_size=2), _stimulus({}))
    assert isinstance(captioner, Blip2Captioner) and not captioner.is_stand_in and "blip2" in CAPTIONERS
    frames = np.random.default_rng(0).integers(0, 255, size=(3, 30, 40), dtype=np.uint8)
    calls = [0]
    captioner.model.vision_model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    captions = captioner.caption(frames, np.arange(3))
    assert calls[0] == 2  # two batches through the real BLIP-2 vision model
    assert [len(c) for c in captions] == [1, 1, 1] and all(isinstance(c[0], str) for c in captions)
    assert captioner.caption(frames[:1], np.arange(1)) == captions[:1]


def test_unavailable_blip2_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot load a BLIP-2 model"):
        Blip2Captioner(tmp_path / "missing")
