"""LM-backbone decoders on tiny models built from configs and saved with ``save_pretrained``,
loaded back through the same ``from_pretrained`` path a user's hub id or folder takes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from transformers import AutoModel, BertConfig, CLIPVisionConfig, GPT2Config, LlamaConfig

from neurrator.core.errors import InputError
from neurrator.encoder.lm_decoder import (
    LMDecoderConfig,
    LMDecoderModel,
    load_backbone,
    match_scratch_width,
)
from neurrator.encoder.lm_estimator import LMDecoder
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.preprocess.behaviour import BehaviourTargets

TINY = {"gpt2": GPT2Config(n_layer=3, n_embd=32, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0),
        "bert": BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                           vocab_size=64, max_position_embeddings=32),
        "llama": LlamaConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2, num_key_value_heads=1,
                             intermediate_size=64, vocab_size=64)}
FAST = {"n_layers": 2, "seq_bins": 6, "max_steps": 18, "val_every": 6, "batch_size": 16, "lr": 3e-3}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("lms")
    out = {}
    for name, config in TINY.items():
        torch.manual_seed(0)
        AutoModel.from_config(config).save_pretrained(root / name)
        out[name] = str(root / name)
    torch.manual_seed(0)
    AutoModel.from_config(CLIPVisionConfig(num_hidden_layers=1, hidden_size=32, num_attention_heads=2,
                                           intermediate_size=64, image_size=32, patch_size=16)).save_pretrained(root / "clip")
    out["clip"] = str(root / "clip")
    return out


@pytest.fixture(scope="module")
def problem():
    """A planted problem; the behaviour is the first latent of the frame, different per repeat."""
    dataset, targets, split = synthetic_problem(n_units=24, n_frames=60, n_repeats=6, n_patches=4, dim=4, seed=3)
    rng = np.random.default_rng(0)
    values = dataset.responses[:, dataset.pad : -dataset.pad].reshape(dataset.n_repeats, dataset.n_frames, 4, -1)
    values = values.mean(axis=(2, 3)) + 0.1 * rng.normal(size=(dataset.n_repeats, dataset.n_frames))
    return dataset, targets, split, BehaviourTargets("running_speed", "cm/s", values.astype(np.float64), "s1")


def test_causal_and_encoder_only_models_load_from_folders(folders):
    for name, causal in (("gpt2", True), ("bert", False), ("llama", True)):
        config = LMDecoderConfig(n_units=5, backbone=folders[name], n_layers=2)
        backbone = load_backbone(config)
        assert config.is_causal is causal and config.backbone_layers == 2 and config.hidden_size == 32
        saved = AutoModel.from_pretrained(folders[name])
        # pretrained weights of the kept blocks, the folder's model untouched by truncation
        mine = dict(backbone.named_parameters())
        for key, value in saved.named_parameters():
            if key in mine and mine[key].shape == value.shape:
                torch.testing.assert_close(mine[key], value)
        assert backbone.get_input_embeddings().weight.shape[0] == 1 < saved.get_input_embeddings().weight.shape[0]
        out = LMDecoderModel(config, backbone)(torch.randn(3, 20, 5))
        assert out.shape == (3, 1)


def test_a_model_that_is_not_a_language_model_is_refused(folders, tmp_path):
    with pytest.raises(InputError, match="not a language model") as err:
        load_backbone(LMDecoderConfig(n_units=3, backbone=folders["clip"]))
    assert "\n" not in str(err.value) and "clip" in str(err.value)
    with pytest.raises(InputError, match="cannot read a model config"):
        load_backbone(LMDecoderConfig(n_units=3, backbone=str(tmp_path / "nothing-here")))


def test_random_init_differs_from_pretrained_and_is_seeded(folders):
    pre = load_backbone(LMDecoderConfig(n_units=3, backbone=folders["gpt2"]))
    a = load_backbone(LMDecoderConfig(n_units=3, backbone=folders["gpt2"], init="random"), seed=1)
    b = load_backbone(LMDecoderConfig(n_units=3, backbone=folders["gpt2"], init="random"), seed=1)
    key = "h.0.attn.c_attn.weight"
    torch.testing.assert_close(dict(a.named_parameters())[key], dict(b.named_parameters())[key])
    assert not torch.equal(dict(a.named_parameters())[key], dict(pre.named_parameters())[key])


def test_training_modes_train_what_they_say(folders, problem):
    dataset, _, split, speed = problem
    shared = load_backbone(LMDecoderConfig(n_units=dataset.n_units, backbone=folders["llama"], n_layers=2))
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    counts = {}
    for mode in ("frozen", "lora", "full"):
        est = LMDecoder(backbone=folders["llama"], mode=mode, seed=0, **FAST).fit(dataset, speed, split, backbone=shared)
        counts[mode] = est.meta_.metrics["trainable_parameters"]
        trained = {k: v for k, v in est.model_.backbone.state_dict().items()}
        changed = [k for k in before if k in trained and not torch.equal(before[k], trained[k])]
        if mode == "full":
            assert changed
        else:
            assert not changed  # frozen base weights (LoRA adds its own lora_A/lora_B)
        if mode == "lora":
            assert any("lora_" in k for k, p in est.model_.named_parameters() if p.requires_grad)
    adapter_and_head = dataset.n_units * 32 + 32 + 33
    assert counts["frozen"] == adapter_and_head < counts["lora"] < counts["full"]
    for key, value in shared.state_dict().items():  # the shared backbone was never modified
        torch.testing.assert_close(value, before[key])


def test_scratch_width_matches_trainable_parameters(folders):
    config = LMDecoderConfig(n_units=200, backbone=folders["gpt2"], n_layers=2, seq_bins=8)
    target = LMDecoderModel(config, load_backbone(config)).num_parameters()
    width = match_scratch_width(config, target)
    scratch = LMDecoderModel(LMDecoderConfig(**{**config.to_dict(), "init": "scratch", "scratch_width": width}))
    wider = LMDecoderModel(LMDecoderConfig(**{**config.to_dict(), "init": "scratch", "scratch_width": width + 4}))
    assert abs(scratch.num_parameters() - target) <= abs(wider.num_parameters() - target)
    assert abs(scratch.num_parameters() - target) / target < 0.1


def test_estimator_contract_unit_subsets_and_checkpoints(folders, problem, tmp_path):
    dataset, _, split, speed = problem
    est = LMDecoder(backbone=folders["bert"], mode="lora", seed=1, **FAST)
    twin = clone(est)
    assert twin.get_params(deep=True) == est.get_params() and twin is not est
    assert est.set_params(lr=1e-2).lr == 1e-2
    est.set_params(lr=FAST["lr"])
    with pytest.raises(NotFittedError, match="not fitted"):
        est.predict(dataset, split.test)
    est.fit(dataset, speed, split)
    pred = est.predict(dataset, split.test)
    assert pred.shape == (len(split.test),) and np.isfinite(pred).all()
    # a unit subset equals zeroing the other units' z-scores
    ids = dataset.unit_ids[:5]
    subset = est.predict(dataset, split.test, units=list(ids))
    zeroed = est.model_(torch.from_numpy(dataset.windows(split.test)) * torch.from_numpy(np.isin(dataset.unit_ids, ids)))
    np.testing.assert_allclose(subset, zeroed[:, 0].detach().double().numpy() * est.meta_.target["std"]
                               + est.meta_.target["mean"], rtol=1e-4, atol=1e-4)
    with pytest.raises(InputError, match="selects no units"):
        est.predict(dataset, split.test, units="area:VISam")
    est.save(tmp_path / "ckpt")
    again = LMDecoder.load(tmp_path / "ckpt", expect_units=dataset.unit_ids)
    np.testing.assert_allclose(again.predict(dataset, split.test), pred, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="units"):
        LMDecoder.load(tmp_path / "ckpt", expect_units=dataset.unit_ids[::-1])


def test_frozen_pretrained_checkpoint_stores_no_backbone_weights(folders, problem, tmp_path):
    dataset, _, split, speed = problem
    for init in ("pretrained", "random"):
        est = LMDecoder(backbone=folders["gpt2"], init=init, seed=0, **FAST).fit(dataset, speed, split)
        est.save(tmp_path / init)
        again = LMDecoder.load(tmp_path / init)
        np.testing.assert_allclose(again.predict(dataset, split.test), est.predict(dataset, split.test), rtol=1e-5, atol=1e-5)
    from safetensors.torch import load_file

    assert not any(k.startswith("backbone.") for k in load_file(str(tmp_path / "pretrained" / "checkpoint.safetensors")))
    assert any(k.startswith("backbone.") for k in load_file(str(tmp_path / "random" / "checkpoint.safetensors")))


def test_vision_head_predicts_patches_of_the_basis(folders, problem):
    dataset, targets, split, _ = problem
    est = LMDecoder(backbone=folders["gpt2"], basis_rank=6, basis_hidden=16, seed=0, **FAST).fit(dataset, targets, split)
    pred = est.predict(dataset, split.test)
    assert pred.shape == (len(split.test), targets.info.n_patches, targets.info.dim)
    assert est.space.space_id == targets.info.space_id
    assert -1 <= est.score(dataset, split.test, targets) <= 1


def test_bad_parameters_and_targets_are_one_line_errors(folders, problem):
    dataset, _, split, speed = problem
    with pytest.raises(InputError, match="mode="):
        LMDecoder(backbone=folders["gpt2"], mode="half").fit(dataset, speed, split)
    with pytest.raises(InputError, match="seq_bins"):
        LMDecoder(backbone=folders["gpt2"], seq_bins=50).fit(dataset, speed, split)
    silent = BehaviourTargets("running_speed", "cm/s", np.full_like(speed.values, np.nan), "s9")
    with pytest.raises(InputError, match="s9: too few"):
        LMDecoder(backbone=folders["gpt2"]).fit(dataset, silent, split)
    with pytest.raises(InputError, match="8-bit"):
        LMDecoder(backbone=folders["gpt2"], load_in_8bit=True).fit(dataset, speed, split)


def test_vision_head_is_a_benchmark_method_under_the_budget(folders, problem):
    from neurrator.config import RunConfig
    from neurrator.evaluate.methods import (
        BENCHMARK_METHODS,
        BenchmarkMethod,
        Budget,
        make_task,
        run_cell,
    )

    dataset, targets, split, _ = problem
    config = RunConfig().with_overrides({"lm_decode.backbone": folders["gpt2"], "lm_decode.seq_bins": 6})
    budget = Budget(max_steps=12, validate_every=6, patience=2, batch_size=16)
    task = make_task(dataset, targets, split, budget, basis_components=6)
    for name, init in (("lm_decoder", "pretrained"), ("lm_decoder_random", "random")):
        method = BENCHMARK_METHODS.create(name, config=config)
        assert isinstance(method, BenchmarkMethod) and method.iterative and method.answers_unseen_frames
        cell = run_cell(method, task, budget, seed=0, test_pairs=split.test[:20])
        assert cell.predicted.shape == (20, targets.info.n_patches, targets.info.dim)
        assert cell.fit.steps <= 12 and [s for s, _ in cell.fit.history] == list(range(6, cell.fit.steps + 1, 6))
        assert init in cell.fit.notes["model"] and cell.fit.n_parameters > 0


def test_bfloat16_autocast_trains_every_architecture(folders, problem):
    dataset, _, split, speed = problem
    for name, mode in (("gpt2", "frozen"), ("bert", "lora"), ("llama", "full")):
        est = LMDecoder(backbone=folders[name], mode=mode, precision="bfloat16", seed=0, **FAST).fit(dataset, speed, split)
        pred = est.predict(dataset, split.test)
        assert pred.dtype == np.float64 and np.isfinite(pred).all()
        assert all(p.dtype == torch.float32 for p in est.model_.parameters())
    scratch = LMDecoder(backbone=folders["gpt2"], init="scratch", scratch_width=16, precision="bfloat16", seed=0, **FAST)
    assert np.isfinite(scratch.fit(dataset, speed, split).predict(dataset, split.test)).all()


def test_offline_smollm2_comes_through_the_narrators_loader(tmp_path, monkeypatch):
    """The default backbone is the narrator's SmolLM2 (one load per process), truncated without
    touching it; a backbone that trains is a copy; the float32 cache copy reads back the same
    weights of the kept blocks."""
    pytest.importorskip("gguf")
    from neurrator.encoder import lm_decoder
    from neurrator.narrate import retrieval_lm

    narrator_base = retrieval_lm.load_language_model().model.base_model
    n_blocks = len(narrator_base.layers)
    config = LMDecoderConfig(n_units=7, n_layers=2, precision="bfloat16")
    backbone = load_backbone(config)
    assert config.is_causal and config.backbone_layers == 2 and config.hidden_size == 576
    assert backbone.layers[0] is narrator_base.layers[0] and len(narrator_base.layers) == n_blocks > 2
    assert LMDecoderModel(config, backbone)(torch.randn(2, 20, 7)).shape == (2, 1)
    before = narrator_base.layers[0].mlp.up_proj.weight.clone()
    full = LMDecoderModel(LMDecoderConfig(n_units=7, n_layers=2, mode="full", hidden_size=576), backbone)
    with torch.no_grad():
        for p in full.backbone.parameters():
            p.add_(1.0)
    torch.testing.assert_close(narrator_base.layers[0].mlp.up_proj.weight, before)  # trained on a copy

    cache = lm_decoder._smollm2_cache(tmp_path)
    narrator_base.save_pretrained(cache)  # what the first out-of-process load writes
    monkeypatch.setattr(retrieval_lm, "_LANGUAGE_MODELS", {})  # as in a fresh process
    cached = load_backbone(LMDecoderConfig(n_units=7, n_layers=2), cache_dir=tmp_path)
    assert len(cached.layers) == 2 and cached.layers[0] is not narrator_base.layers[0]
    key = "layers.1.self_attn.q_proj.weight"
    torch.testing.assert_close(dict(cached.named_parameters())[key], dict(narrator_base.named_parameters())[key])
