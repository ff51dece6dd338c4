"""vLLM narrator pieces that run without vLLM or a GPU: LLaVA's own projector applied to
predicted patches (checked against transformers' LLaVA image-feature path on a tiny LLaVA built
from configs), the request format, sharding, and registration."""

from __future__ import annotations

import sys

import pytest
import torch

pytest.importorskip("transformers")

from neurrator.core.errors import InputError, NeurratorError
from neurrator.narrate import NARRATORS, NarrateConfig, build_narrator
from neurrator.narrate.llava import injected_patches
from neurrator.narrate.vllm import build_requests, load_projector, project_patches, shard

VISION_DIM, LM_DIM, GRID = 24, 40, 16  # 28 px images, 7 px patches → 16 patches


def _tiny_llava(folder, strategy: str):
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
    )

    vision = CLIPVisionConfig(hidden_size=VISION_DIM, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                              image_size=28, patch_size=7)
    text = LlamaConfig(vocab_size=64, hidden_size=LM_DIM, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_id=5, vision_feature_layer=-2,
                         vision_feature_select_strategy=strategy, projector_hidden_act="gelu")
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # non-trivial projector weights and biases
        for p in model.model.multi_modal_projector.parameters():
            p.normal_(0, 0.3)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("strategy", ["default", "full"])
def test_projected_patches_match_llava_image_features(tmp_path, strategy):
    """Only the projector's tensors are read from the saved checkpoint; the image embeddings
    equal what LLaVA itself computes from a tower whose output is the predicted patches."""
    model = _tiny_llava(tmp_path, strategy)
    projector, config = load_projector(tmp_path)
    patches = torch.randn(3, GRID, VISION_DIM)
    ours = project_patches(projector, config, patches)
    pixels = torch.zeros(3, 3, 28, 28)
    with torch.no_grad(), injected_patches(model, patches):
        features = model.model.get_image_features(
            pixels, vision_feature_layer=config.vision_feature_layer,
            vision_feature_select_strategy=config.vision_feature_select_strategy).pooler_output
    reference = torch.stack(list(features))
    assert ours.shape == (3, GRID + (strategy == "full"), LM_DIM) == reference.shape
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


def test_sharded_checkpoint_and_old_key_layout(tmp_path):
    """A sharded checkpoint with the original ``multi_modal_projector.*`` keys (as on the hub)."""
    import json

    from safetensors.torch import load_file, save_file

    model = _tiny_llava(tmp_path / "src", "default")
    state = load_file(str(tmp_path / "src" / "model.safetensors"))
    renamed = {k.replace("model.multi_modal_projector.", "multi_modal_projector."): v for k, v in state.items()}
    out = tmp_path / "sharded"
    out.mkdir()
    (out / "config.json").write_text((tmp_path / "src" / "config.json").read_text())
    proj = {k: v for k, v in renamed.items() if k.startswith("multi_modal_projector.")}
    rest = {k: v for k, v in renamed.items() if k not in proj}
    save_file(rest, str(out / "model-00001-of-00002.safetensors"))
    save_file(proj, str(out / "model-00002-of-00002.safetensors"))
    weight_map = {k: "model-00001-of-00002.safetensors" for k in rest}
    weight_map.update({k: "model-00002-of-00002.safetensors" for k in proj})
    (out / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    projector, config = load_projector(out)
    patches = torch.randn(2, GRID, VISION_DIM)
    with torch.no_grad():
        expected = model.model.multi_modal_projector(patches)
    torch.testing.assert_close(project_patches(projector, config, patches), expected, atol=1e-5, rtol=1e-5)


def test_patches_of_another_space_are_refused(tmp_path):
    _tiny_llava(tmp_path, "default")
    projector, config = load_projector(tmp_path)
    with pytest.raises(InputError, match="do not fit this LLaVA's vision tower"):
        project_patches(projector, config, torch.randn(2, GRID, VISION_DIM + 1))


def test_requests_follow_vllms_image_embedding_format():
    embeds = torch.randn(3, 576, 64)
    prompt = "USER: <image>\nDescribe this scene in one sentence.\nASSISTANT:"
    requests = build_requests(prompt, embeds)
    assert len(requests) == 3
    for i, request in enumerate(requests):
        assert set(request) == {"prompt", "multi_modal_data"} and request["prompt"] == prompt
        image = request["multi_modal_data"]["image"]
        assert image.shape == (1, 576, 64) and torch.equal(image[0], embeds[i])  # (num_items, feature_size, hidden)
    with pytest.raises(InputError, match="exactly once"):
        build_requests("USER: describe\nASSISTANT:", embeds)
    assert [(s.start, s.stop) for s in shard(10, 4)] == [(0, 4), (4, 8), (8, 10)]


def test_registered_in_the_one_factory_and_needs_the_extra(monkeypatch):
    assert "vllm" in NARRATORS.names()
    monkeypatch.setitem(sys.modules, "vllm", None)  # as on a machine without the extra
    with pytest.raises(NeurratorError, match=r"neurrator\[vllm\]"):
        build_narrator(NarrateConfig(narrator="vllm"))


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_are_sharded_over_engines_and_come_back_in_order(workers):
    from neurrator.narrate.vllm import VLLMNarrator

    class EchoEngine:  # defined here so that Ray ships it by value to its workers
        """Stands in for a vLLM engine: one sentence per window, naming the window's first value."""

        def __init__(self, model, **kwargs):
            self.kwargs = kwargs

        def narrate(self, patches):
            return [f"window {int(p[0, 0])}" for p in patches]

    if workers > 1:
        ray = pytest.importorskip("ray")
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        narrator = VLLMNarrator("any", batch_size=3, workers=workers, gpus_per_worker=0, engine=EchoEngine)
        patches = torch.arange(10, dtype=torch.float32)[:, None, None].expand(10, 4, 2)
        assert narrator.narrate(patches) == [f"window {i}" for i in range(10)]
    finally:
        if workers > 1:
            ray.shutdown()


def test_engine_feeds_vllm_the_projected_patches_in_batches(tmp_path, monkeypatch):
    """The real engine class against a recording stand-in of the ``vllm`` module: the engine is
    built with image embeddings enabled, each ``generate`` call gets one batch of requests whose
    image is LLaVA's projection of that window's patches, decoding is greedy, and sentences come
    back in window order."""
    import types

    from neurrator.narrate.vllm import VLLMNarrator, engine_args

    model = _tiny_llava(tmp_path, "default")
    calls: dict = {"init": [], "generate": []}

    class FakeLLM:
        def __init__(self, **kwargs):
            calls["init"].append(kwargs)

        def generate(self, requests, sampling, use_tqdm=True):
            calls["generate"].append((requests, sampling))
            start = sum(len(r) for r, _ in calls["generate"][:-1])
            return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f" window {start + i} ")])
                    for i in range(len(requests))]

    class FakeSampling:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSampling))
    prompt = "USER: <image>\nDescribe this scene in one sentence.\nASSISTANT:"
    narrator = VLLMNarrator(str(tmp_path), prompt=prompt, max_new_tokens=12, dtype="float32", batch_size=2)
    patches = torch.randn(5, GRID, VISION_DIM)
    assert narrator.narrate(patches) == [f"window {i}" for i in range(5)]

    (init,) = calls["init"]
    assert init["enable_mm_embeds"] is True and init["model"] == str(tmp_path)
    assert init["limit_mm_per_prompt"] == {"image": 1} and "distributed_executor_backend" not in init
    assert [len(requests) for requests, _ in calls["generate"]] == [2, 2, 1]  # batches of batch_size windows
    assert calls["generate"][0][1].kwargs == {"temperature": 0.0, "max_tokens": 12}
    sent = torch.cat([r["multi_modal_data"]["image"] for requests, _ in calls["generate"] for r in requests])
    with torch.no_grad():
        expected = model.model.multi_modal_projector(patches)  # (n, feature_size, LM hidden size)
    assert sent.shape == (5, GRID, LM_DIM)
    torch.testing.assert_close(sent, expected, atol=1e-5, rtol=1e-5)
    assert all(r["prompt"] == prompt for requests, _ in calls["generate"] for r in requests)
    assert engine_args("m", dtype="float16", tensor_parallel_size=2)["distributed_executor_backend"] == "mp"
