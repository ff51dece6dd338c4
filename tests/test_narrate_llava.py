"""LLaVA patch injection and the LLaVA captioner, on a tiny LLaVA saved and reloaded through
``from_pretrained`` (no real weights exist offline)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("transformers")

from neurrator.core.errors import InputError  # noqa: E402
from neurrator.narrate import NARRATORS, CAPTIONERS, NarrateConfig, build_narrator  # noqa: E402
from neurrator.narrate.captioners import LlavaCaptioner  # noqa: E402
from neurrator.narrate.llava import LlavaNarrator, injected_patches, load_llava  # noqa: E402
from tiny_models import save_tiny_llava  # noqa: E402

GRID, DIM = 16, 16  # 28 px images, 7 px patches → 4 × 4 patches of width 16


@pytest.fixture(scope="module")
def tiny_llava_dir(tmp_path_factory):
    return save_tiny_llava(tmp_path_factory.mktemp("tiny-llava"))


@pytest.fixture(scope="module")
def narrator(tiny_llava_dir):
    return LlavaNarrator(tiny_llava_dir, max_new_tokens=8, batch_size=2)


def _count_tower_runs(llava) -> list[int]:
    """A counter that goes up whenever the CLIP tower's own layers run."""
    calls = [0]
    llava.model.vision_tower.embeddings.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def _real_image_output(llava, processor) -> torch.Tensor:
    pixels = processor.image_processor(images=[np.full((28, 28, 3), 128, np.uint8)], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        return llava.model.get_image_features(pixel_values=pixels, vision_feature_layer=-2,
                                              vision_feature_select_strategy="default").pooler_output[0]


def test_injection_never_runs_the_tower_and_patches_change_the_sentence(narrator):
    calls = _count_tower_runs(narrator.llava)
    rng = np.random.default_rng(0)
    patches = torch.from_numpy(rng.normal(size=(4, GRID, DIM)).astype(np.float32) * 3)
    sentences = narrator.narrate(patches)  # two batches of two
    assert calls[0] == 0
    assert len(sentences) == 4 and all(isinstance(s, str) for s in sentences)
    assert len(set(sentences)) > 1, "different patches must be able to give different narrations"
    assert narrator.narrate(patches[:1]) == sentences[:1], "greedy narration is deterministic and batch-independent"


def test_projector_sees_exactly_the_injected_patches(narrator):
    llava = narrator.llava
    patches = torch.randn(1, GRID, DIM)
    with injected_patches(llava, patches), torch.no_grad():
        features = llava.model.get_image_features(
            pixel_values=torch.zeros(1, 3, 28, 28), vision_feature_layer=-2, vision_feature_select_strategy="default"
        ).pooler_output[0]
    expected = llava.model.multi_modal_projector(patches)[0]
    torch.testing.assert_close(features, expected)


def test_real_image_path_restored_even_after_an_error(narrator, tiny_llava_dir):
    llava, processor = narrator.llava, narrator.processor
    before = _real_image_output(llava, processor)
    with pytest.raises(RuntimeError, match="boom"), injected_patches(llava, torch.randn(1, GRID, DIM)):
        raise RuntimeError("boom")
    assert "forward" not in llava.model.vision_tower.__dict__
    calls = _count_tower_runs(llava)
    torch.testing.assert_close(_real_image_output(llava, processor), before)
    assert calls[0] == 1


def test_patches_from_another_space_are_refused(narrator):
    with pytest.raises(ValueError, match="do not fit this vision tower"), injected_patches(narrator.llava, torch.randn(1, 9, DIM)):
        pass


def test_registry_builds_llava_from_a_local_dir(tiny_llava_dir):
    config = NarrateConfig(narrator="llava", llava_model=str(tiny_llava_dir), max_new_tokens=3)
    narrator = build_narrator(config)
    assert "llava" in NARRATORS and narrator.name == "llava" and narrator.is_stand_in is False
    assert len(narrator.narrate(torch.randn(3, GRID, DIM))) == 3


def test_unavailable_model_is_a_clear_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot load a LLaVA model"):
        load_llava(tmp_path / "no-such-model")


def test_llava_captioner_describes_real_frames(tiny_llava_dir):
    captioner = LlavaCaptioner(tiny_llava_dir, prompt="USER: <image>\nDescribe this scene in one sentence.\nASSISTANT:",
                               max_new_tokens=6, batch_size=2)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, size=(3, 30, 40), dtype=np.uint8)
    calls = _count_tower_runs(captioner.model)
    captions = captioner.caption(frames, np.arange(3))
    assert calls[0] == 2  # two batches, each through the real tower
    assert [len(c) for c in captions] == [1, 1, 1]
    assert "llava" in CAPTIONERS
