"""Encoder models: shapes, paper parameter count, losses, unit masks, the PCA basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurrator.core.linalg import fit_pca_basis
from neurrator.encoder import (
    EncoderConfig,
    EncoderModelConfig,
    NeurratorPatches,
    NeurratorRetrieval,
    patch_loss,
)
from neurrator.encoder.estimator import _model_config

TINY = {"n_units": 12, "n_patches": 9, "patch_dim": 6, "conv_channels": 8, "d_model": 16, "n_heads": 2, "ff_dim": 32, "basis_rank": 4,
            "basis_hidden": 16}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paper_model_has_the_released_parameter_count():
    """Released encoder_patches.py at 2,000 units × 576×1024: 12,493,568 parameters, no pooling layer."""
    config = _model_config(EncoderConfig(preset="paper"), 2000, 576, 1024)
    model = NeurratorPatches(config)
    assert config.head == "patches" and config.memory == "sequence"
    assert config.d_model == 384 and config.ff_dim == 768 and config.n_heads == 8
    assert model.body.pool is None
    assert model.num_parameters() == 12_493_568
    pooled = NeurratorPatches(_model_config(EncoderConfig(preset="paper", memory="pooled"), 2000, 576, 1024))
    assert pooled.num_parameters() == 12_493_568 + 384 + 1  # the text's attention pooling: Linear(384, 1)


def test_pooled_memory_gives_query_key_weights_no_gradient_and_sequence_memory_does():
    for memory, expect_zero in (("pooled", True), ("sequence", False)):
        model = NeurratorPatches(EncoderModelConfig(head="patches", memory=memory, dropout=0.0, **TINY))
        model(torch.randn(4, 20, 12)).square().mean().backward()
        d = model.config.d_model
        qk_grad = model.head.cross_attn.in_proj_weight.grad[: 2 * d]
        assert (qk_grad.abs().max() < 1e-9) == expect_zero, memory  # softmax over one key ≡ 1: only round-off


@pytest.mark.parametrize("head,memory", [("patches", "sequence"), ("patches", "pooled"), ("basis", "sequence")])
def test_forward_shapes(head, memory):
    model = NeurratorPatches(EncoderModelConfig(head=head, memory=memory, **TINY)).eval()
    out = model(torch.randn(5, 20, 12))
    assert out.shape == (5, 9, 6)
    assert torch.isfinite(out).all()


def test_pooled_memory_ignores_temporal_order_beyond_pooling():
    """With pooled memory the queries see one vector: every query gets the same attended value."""
    model = NeurratorPatches(EncoderModelConfig(head="patches", memory="pooled", **TINY)).eval()
    _seq, pooled = model.body(torch.randn(3, 20, 12))
    head = model.head
    q = head.patch_queries.unsqueeze(0).expand(3, -1, -1)
    attended, _ = head.cross_attn(q, pooled.unsqueeze(1), pooled.unsqueeze(1))
    assert torch.allclose(attended[:, :1].expand_as(attended), attended, atol=1e-6)


def test_unit_mask_equals_zeroing_inputs():
    model = NeurratorPatches(EncoderModelConfig(**TINY)).eval()
    x = torch.randn(4, 20, 12)
    mask = torch.zeros(12, dtype=torch.bool)
    mask[:5] = True
    zeroed = x.clone()
    zeroed[..., 5:] = 0
    assert torch.allclose(model(x, mask), model(zeroed), atol=1e-6)
    per_window = mask.expand(4, -1)
    assert torch.allclose(model(x, per_window), model(zeroed), atol=1e-6)


def test_patch_loss_is_half_mse_half_cosine():
    pred, target = torch.randn(3, 5, 4), torch.randn(3, 5, 4)
    expected = 0.5 * F.mse_loss(pred, target) + 0.5 * (1 - F.cosine_similarity(pred, target, dim=-1).mean())
    assert torch.allclose(patch_loss(pred, target), expected)
    assert patch_loss(target, target) < 1e-6
    assert patch_loss(pred, target, infonce_weight=1.0) > patch_loss(pred, target)


def test_retrieval_model_logits():
    model = NeurratorRetrieval(EncoderModelConfig(n_classes=7, **TINY)).eval()
    assert model(torch.randn(2, 20, 12)).shape == (2, 7)
    with pytest.raises(ValueError):
        NeurratorRetrieval(EncoderModelConfig(n_classes=1, **TINY))


def test_basis_uses_training_frames_only_and_reconstructs_them():
    rng = np.random.default_rng(0)
    low_rank = rng.normal(size=(30, 3)) @ rng.normal(size=(3, 4 * 5))
    patches = low_rank.reshape(30, 4, 5).astype(np.float16)
    patches[20:] = 100  # held-out frames: must not shape the basis
    fit = fit_pca_basis(patches, np.arange(20), rank=8, patch_chunk=3)
    assert fit.rank <= 8 and fit.explained > 0.999
    flat = patches[:20].reshape(20, -1).astype(np.float32)
    assert float(np.abs(fit.mean).max()) < 10  # the 100s were never seen
    z = ((flat - fit.mean) @ fit.components.T) / fit.scale
    recon = fit.mean + (z * fit.scale) @ fit.components
    np.testing.assert_allclose(recon, flat, atol=2e-2)
    np.testing.assert_allclose(fit.components @ fit.components.T, np.eye(fit.rank), atol=1e-4)
    np.testing.assert_allclose(z.std(0, ddof=1), np.ones(fit.rank), atol=1e-3)  # whitened coefficients


def test_presets_resolve_and_explicit_fields_win():
    demo = EncoderConfig().resolved()
    assert demo.head == "basis" and demo.max_minutes == 0 and demo.max_steps > 0
    paper = EncoderConfig(preset="paper").resolved()
    assert paper.head == "patches" and paper.max_epochs == 60 and paper.unit_bottleneck == 0
    assert EncoderConfig(preset="paper", head="basis").resolved().head == "basis"
