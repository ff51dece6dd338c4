"""Shared-bin batch inference equals the per-window forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neurrator.encoder import EncoderModelConfig, NeurratorPatches, NeurratorRetrieval
from neurrator.encoder.inference import predict_windows
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.encoder.train import WindowSampler

SMALL = {"n_patches": 9, "patch_dim": 6, "conv_channels": 8, "d_model": 16, "n_heads": 2, "ff_dim": 32,
         "basis_rank": 4, "basis_hidden": 16}


@pytest.fixture(scope="module")
def data():
    dataset, _, split = synthetic_problem(n_units=14, n_frames=40, n_repeats=4, n_patches=9, dim=6, seed=3)
    return dataset, split


def _trained_looking(model):
    torch.manual_seed(1)
    with torch.no_grad():
        for branch in model.body.conv.branches:  # non-trivial BatchNorm statistics
            branch[2].running_mean.uniform_(-0.5, 0.5)
            branch[2].running_var.uniform_(0.5, 2.0)
        if getattr(model, "local", None) is not None:
            cfg = model.config
            support = torch.stack([torch.randperm(cfg.n_units)[: cfg.rf_units] for _ in range(cfg.n_patches)])
            model.local.set_support(support, torch.rand(cfg.n_patches, cfg.rf_units))
            model.local.unit_maps.normal_()
        if hasattr(model, "head") and hasattr(model.head, "basis"):
            n = model.config.n_patches * model.config.patch_dim
            model.head.basis.set(torch.randn(n), torch.randn(model.config.basis_rank, n), torch.rand(model.config.basis_rank))
    return model.eval()


@pytest.mark.parametrize("kind", ["basis+bottleneck", "patches", "retrieval", "basis+local"])
def test_shared_bin_inference_equals_per_window_forward(data, kind):
    dataset, split = data
    torch.manual_seed(0)
    if kind == "retrieval":
        model = NeurratorRetrieval(EncoderModelConfig(n_units=14, n_classes=5, **SMALL))
    else:
        model = NeurratorPatches(EncoderModelConfig(
            n_units=14, head="basis" if kind.startswith("basis") else "patches",
            unit_bottleneck=6 if "bottleneck" in kind else None, rf_units=5 if "local" in kind else 0, **SMALL))
    model = _trained_looking(model)
    rng = np.random.default_rng(0)
    pairs = np.concatenate([split.test, split.val])[rng.permutation(len(split.test) + len(split.val))][:70]
    pairs[:3, 1] = [0, 39, 1]  # windows at both ends of a repeat (padded, clipped)
    sampler = WindowSampler(dataset)
    mask = torch.from_numpy(rng.random(14) < 0.6)
    for unit_mask, shifts in ((None, (0,)), (mask, (0,)), (None, (-2, 1, 3))):
        with torch.no_grad():
            expected = sum(model(sampler.gather(pairs, np.full(len(pairs), s)), unit_mask) for s in shifts) / len(shifts)
        got = torch.empty_like(expected)
        for index, out in predict_windows(model, dataset, pairs, unit_mask=unit_mask, shifts=shifts, batch_size=16):
            got[torch.from_numpy(index)] = out
        torch.testing.assert_close(got, expected, atol=2e-5, rtol=1e-4)


def test_predict_windows_refuses_a_training_model(data):
    dataset, split = data
    model = NeurratorPatches(EncoderModelConfig(n_units=14, **SMALL)).train()
    with pytest.raises(ValueError, match="eval"):
        next(predict_windows(model, dataset, split.test[:4]))


def test_bfloat16_inference_is_close_to_float32(data):
    dataset, split = data
    torch.manual_seed(0)
    model = _trained_looking(NeurratorPatches(EncoderModelConfig(n_units=14, head="basis", unit_bottleneck=6, **SMALL)))
    pairs = split.test[:40]
    exact = torch.cat([o for _, o in predict_windows(model, dataset, pairs, batch_size=64)])
    fast = torch.cat([o for _, o in predict_windows(model, dataset, pairs, batch_size=64, dtype="bfloat16")])
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    assert ((fast - exact).norm() / exact.norm()).item() < 0.02
