"""The CLIP backend on tiny towers built from configs and loaded back through from_pretrained."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModel,
)

from neurrator.core.errors import InputError
from neurrator.vision import build_space
from neurrator.vision.base import VisionSpace
from neurrator.vision.clip import CLIPSpace
from neurrator.vision.config import VisionConfig

TINY = {"image_size": 28, "patch_size": 7, "hidden_size": 32, "intermediate_size": 37,
        "num_hidden_layers": 3, "num_attention_heads": 2}
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


@pytest.fixture(scope="module")
def tiny_tower(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-clip-vision")
    CLIPVisionModel(CLIPVisionConfig(**TINY)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def frames():
    return np.random.default_rng(0).integers(0, 256, (5, 30, 60), dtype=np.uint8)


def test_shapes_and_info(tiny_tower, frames):
    space = CLIPSpace(tiny_tower)
    assert isinstance(space, VisionSpace)
    assert space.info.grid == (4, 4) and space.info.dim == 32 and not space.info.is_stand_in
    out = space.embed(frames, batch_size=2)
    assert out.shape == (5, 16, 32) and out.dtype == torch.float32


def test_output_is_the_towers_penultimate_layer_without_cls(tiny_tower, frames):
    space = CLIPSpace(tiny_tower)
    pixels = space.preprocess(frames)
    reference = CLIPVisionModel.from_pretrained(tiny_tower).eval()
    with torch.no_grad():
        expected = reference(pixel_values=pixels, output_hidden_states=True).hidden_states[-2][:, 1:]
    torch.testing.assert_close(space.embed(frames, batch_size=2), expected)


def test_preprocessing_matches_llava_clip_processor(tiny_tower, frames):
    """Shortest side → 28 (bicubic), centre crop 28 × 28, grayscale → RGB, CLIP mean/std."""
    pixels = CLIPSpace(tiny_tower).preprocess(frames).numpy()
    assert pixels.shape == (5, 3, 28, 28)
    for frame, got in zip(frames, pixels):
        rgb = Image.fromarray(frame).convert("RGB").resize((56, 28), Image.Resampling.BICUBIC)
        crop = np.asarray(rgb, dtype=np.float64)[:, 14:42] / 255.0
        expected = ((crop - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1)
        np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.allclose(pixels[:, 0] * CLIP_STD[0] + CLIP_MEAN[0], pixels[:, 1] * CLIP_STD[1] + CLIP_MEAN[1], atol=1e-5)


def test_saved_processor_and_full_clip_checkpoint(tmp_path, frames):
    """A full CLIP checkpoint with its own processor config loads like the hub model would."""
    torch.manual_seed(1)
    config = CLIPConfig(vision_config=TINY, text_config={"hidden_size": 16, "intermediate_size": 20,
                        "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 50}, projection_dim=8)
    CLIPModel(config).save_pretrained(tmp_path)
    CLIPImageProcessorPil(size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}).save_pretrained(tmp_path)
    space = build_space(VisionConfig(backend="clip", model=str(tmp_path), local_files_only=True))
    assert space.embed(frames).shape == (5, 16, 32)
    assert space.info.space_id.startswith(f"clip:{tmp_path.name}@")


def test_space_id_tells_checkpoints_apart(tmp_path, tiny_tower):
    other = tmp_path / tiny_tower.name
    torch.manual_seed(2)
    CLIPVisionModel(CLIPVisionConfig(**TINY)).save_pretrained(other)
    assert CLIPSpace(other).info.space_id != CLIPSpace(tiny_tower).info.space_id
    assert CLIPSpace(tiny_tower, feature_layer=-1).info.space_id != CLIPSpace(tiny_tower).info.space_id


def test_dtype_option(tiny_tower, frames):
    out = CLIPSpace(tiny_tower, dtype="bfloat16").embed(frames)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_unreachable_model_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="oriented-energy"):
        CLIPSpace("no-such-org/no-such-clip", local_files_only=True)
