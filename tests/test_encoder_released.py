"""The released encoder: checkpoints saved by github arnaumarin/neurrator load with equal outputs,
and ``preset="paper"`` follows the released recipe (windows at every bin, per-epoch cosine,
validation on the last 2 non-test repeats, no subset training)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from torch import nn

from neurrator.core.errors import InputError
from neurrator.encoder import EncoderConfig, Neurrator
from neurrator.encoder.estimator import released_validation
from neurrator.encoder.released import load_released_checkpoint
from neurrator.encoder.synthetic import synthetic_problem
from neurrator.encoder.train import Plan, TrainState, bin_offsets, expand_to_bins, learning_rate


class ReleasedLayout(nn.Module):
    """A module with the released ``NeurratorPatches`` attribute names and shapes (its state dict
    is what the released ``train_patches.py`` saves), written from the published description:
    multi-scale conv (Conv1d, GELU, BatchNorm1d per branch), Linear+GELU+LayerNorm+Dropout,
    a temporal TransformerEncoder, learned patch queries cross-attending to the whole sequence,
    a LayerNorm on queries + attended, a patch TransformerEncoder, LayerNorm + Linear out."""

    def __init__(self, n_neurons, n_patches, patch_dim, d_model=32, n_heads=4, conv_ch=8, kernels=(3, 7, 15)):
        super().__init__()
        self.input_drop = nn.Dropout(0.2)
        self.multi_conv = nn.Module()
        self.multi_conv.branches = nn.ModuleList(
            nn.Sequential(nn.Conv1d(n_neurons, conv_ch, k, padding=k // 2), nn.GELU(), nn.BatchNorm1d(conv_ch))
            for k in kernels
        )
        self.input_proj = nn.Sequential(nn.Linear(conv_ch * len(kernels), d_model), nn.GELU(), nn.LayerNorm(d_model),
                                        nn.Dropout(0.2))

        def encoder(layers):
            layer = nn.TransformerEncoderLayer(d_model, n_heads, d_model * 2, 0.2, activation="gelu", batch_first=True)
            return nn.TransformerEncoder(layer, num_layers=layers)

        self.transformer = encoder(2)
        self.patch_queries = nn.Parameter(torch.randn(n_patches, d_model) * 0.02)
        self.cross_attn = nn.MultiheadAttention(d_model, n_heads, batch_first=True, dropout=0.2)
        self.ca_norm = nn.LayerNorm(d_model)
        self.patch_transformer = encoder(2)
        self.out_proj = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, patch_dim))

    def forward(self, x):
        x = self.input_drop(x)
        x = torch.cat([b(x.permute(0, 2, 1)) for b in self.multi_conv.branches], dim=1).permute(0, 2, 1)
        x = self.transformer(self.input_proj(x))
        q = self.patch_queries.unsqueeze(0).expand(x.shape[0], -1, -1)
        attended, _ = self.cross_attn(q, x, x)
        return self.out_proj(self.patch_transformer(self.ca_norm(q + attended)))


def test_released_checkpoint_loads_with_equal_outputs(tmp_path):
    torch.manual_seed(0)
    released = ReleasedLayout(n_neurons=23, n_patches=9, patch_dim=12)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as after training
        for branch in released.multi_conv.branches:
            branch[2].running_mean.uniform_(-0.5, 0.5)
            branch[2].running_var.uniform_(0.5, 2.0)
    released.eval()
    path = tmp_path / "neurrator_patches_nm1_0.pt"
    torch.save({f"module.{k}" if k == "patch_queries" else k: v for k, v in released.state_dict().items()}, path)

    model = load_released_checkpoint(path, n_heads=4)
    cfg = model.config
    assert (cfg.n_units, cfg.n_patches, cfg.patch_dim, cfg.d_model, cfg.ff_dim) == (23, 9, 12, 32, 64)
    assert cfg.conv_kernels == (3, 7, 15) and cfg.memory == "sequence" and cfg.head == "patches"
    assert model.num_parameters() == sum(p.numel() for p in released.parameters())
    x = torch.randn(6, 20, 23)
    with torch.no_grad():
        assert torch.allclose(model(x), released(x), atol=1e-5, rtol=0)


def test_released_loader_refuses_other_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_released_checkpoint(tmp_path / "missing.pt")
    torch.save({"something.else": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not a released"):
        load_released_checkpoint(tmp_path / "other.pt")
    torch.save({"obj": Fraction(1, 3)}, tmp_path / "pickled.pt")  # a class weights_only may not build
    with pytest.raises(InputError, match="weights-only"):
        load_released_checkpoint(tmp_path / "pickled.pt")


def test_paper_preset_is_the_released_recipe():
    c = EncoderConfig(preset="paper").resolved()
    assert (c.memory, c.head, c.sampling, c.lr_schedule, c.validation) == ("sequence", "patches", "bin", "epoch", "released")
    assert not c.subset_robust and c.max_minutes == 0 and c.max_steps == 0 and c.val_every == 0
    assert (c.lr, c.weight_decay, c.batch_size, c.max_epochs, c.patience, c.jitter_bins, c.unit_dropout) == (
        3e-4, 1e-3, 64, 60, 12, 2, 0.1)
    # One window per 120 Hz bin: an epoch of 16 repeats × 900 frames is 57,600 windows, 900 steps.
    plan = Plan.of(c, 16 * 900, bins_per_frame=4)
    assert plan.n_samples == 57_600 and plan.steps_per_epoch == 900 and plan.total_steps == 60 * 900
    # Cosine over 60 epochs, stepped once per epoch (CosineAnnealingLR(T_max=60)).
    lrs = [learning_rate(c, TrainState(epoch=e, step=e * 900 + k), plan) for e in (0, 1, 30) for k in (0, 899)]
    assert lrs[0] == lrs[1] == pytest.approx(3e-4) and lrs[2] == lrs[3] < 3e-4
    assert lrs[4] == pytest.approx(1.5e-4)
    # Bin-centred windows: the frame's 4 bins, each with ±2 jitter → shifts −4 … +3 bins.
    assert bin_offsets(4).tolist() == [-2, -1, 0, 1] and c.max_shift_bins() == (-4, 3)
    pairs, shifts = expand_to_bins(np.array([[0, 5], [1, 7]]), 4)
    assert pairs.tolist() == [[0, 5]] * 4 + [[1, 7]] * 4 and shifts.tolist() == [-2, -1, 0, 1] * 2


def test_bin_window_starts_are_the_released_window_of_each_bin():
    """Released: the window of bin c is X[c-10 : c+10] and its target the frame of bin c."""
    dataset, _, _ = synthetic_problem(n_units=5, n_frames=32, n_repeats=3, n_patches=4, dim=2)
    frame = np.array([6])
    starts = dataset.window_start(frame) + bin_offsets(dataset.bins_per_frame) - dataset.pad
    bins = 4 * 6 + np.arange(4)
    assert (starts == bins - dataset.window // 2).all()


def test_released_validation_is_the_last_two_non_test_repeats():
    _, _, split = synthetic_problem(n_units=5, n_frames=32, n_repeats=20, n_patches=4, dim=2)
    train, val = released_validation(split)
    test_repeats = set(np.unique(split.test[:, 0]).tolist())
    non_test = sorted(set(range(20)) - test_repeats)
    assert sorted(np.unique(val[:, 0]).tolist()) == non_test[-2:]
    assert sorted(np.unique(train[:, 0]).tolist()) == non_test[:-2]
    assert len(train) + len(val) == len(split.train) + len(split.val)


def test_paper_recipe_trains_on_bin_windows_and_validates_on_released_repeats():
    dataset, targets, split = synthetic_problem(n_units=10, n_frames=32, n_repeats=6, n_patches=4, dim=3, seed=2)
    tiny = dict(d_model=16, n_heads=2, ff_dim=16, conv_channels=4, max_epochs=2, batch_size=32, progress=False)
    est = Neurrator(seed=0, preset="paper", **tiny).fit(dataset, targets, split)
    # 5 non-test repeats → 3 train × 32 frames × 4 bins = 384 windows = 12 steps per epoch.
    assert est.meta_.metrics["steps"] == 24 and [h["epoch"] for h in est.history_] == [1, 2]
    assert est.history_[0]["lr"] == pytest.approx(3e-4) and est.history_[1]["lr"] == pytest.approx(1.5e-4)
