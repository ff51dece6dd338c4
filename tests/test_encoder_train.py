"""Encoder training on a planted problem: learning, reproducibility, resume, checkpoints, subsets."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from neurrator.core.errors import InputError
from neurrator.encoder import EncoderConfig, Neurrator, NeurratorRetriever
from neurrator.encoder.synthetic import memmap_targets, synthetic_problem
from neurrator.encoder.train import augmentation_mask
from neurrator.preprocess.types import NeuralDataset, ZScoreStats
from neurrator.vision.base import PatchTargets, SpaceInfo

TINY = {
    "d_model": 32, "n_heads": 2, "ff_dim": 64, "conv_channels": 16, "unit_bottleneck": 16, "basis_rank": 8, "basis_hidden": 32,
    "batch_size": 32, "windows_per_epoch": 192, "max_epochs": 6, "max_steps": 0, "val_every": 0, "progress": False,
    "lr": 2e-3,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """CPU results are bit-reproducible for a fixed thread count, so fix it for the module."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    dataset, targets, split = synthetic_problem(n_units=40, n_frames=64, n_repeats=5, n_patches=16, dim=8, seed=1)
    targets = memmap_targets(targets, tmp_path_factory.mktemp("targets") / "patches.npy")  # like the cache
    return dataset, targets, split


@pytest.fixture(scope="module")
def fitted(problem):
    dataset, targets, split = problem
    return Neurrator(seed=0, **TINY).fit(dataset, targets, split)


def _weights(est) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in est.model_.state_dict().items()}


def test_training_beats_mean_patch_baseline(problem, fitted):
    dataset, targets, split = problem
    baseline = fitted.meta_.metrics["mean_patch_baseline"]
    test_score = fitted.score(dataset, split.test, targets)
    assert fitted.meta_.metrics["val_cosine"] > baseline + 0.05
    assert test_score > baseline + 0.05
    assert len(fitted.history_) == TINY["max_epochs"]


def test_faithful_head_also_learns(problem):
    """The 576-query head learns far more slowly per step (see bench_encoder_heads.py); here it
    only has to improve steadily."""
    dataset, targets, split = problem
    est = Neurrator(seed=0, **{**TINY, "head": "patches", "max_epochs": 4}).fit(dataset, targets, split)
    curve = [h["val_metric"] for h in est.history_]
    assert curve[-1] > curve[0] + 0.1 and est.meta_.metrics["best_epoch"] == 4


def test_same_seed_gives_identical_weights_and_other_seed_does_not(problem, fitted):
    dataset, targets, split = problem
    again = Neurrator(seed=0, **TINY).fit(dataset, targets, split)
    for key, value in _weights(fitted).items():
        assert torch.equal(value, again.model_.state_dict()[key]), key
    other = Neurrator(seed=1, **{**TINY, "max_epochs": 1}).fit(dataset, targets, split)
    assert not torch.equal(other.model_.body.conv.branches[0][0].weight, fitted.model_.body.conv.branches[0][0].weight)


class _Killed(Exception):
    pass


def test_resume_from_mid_run_checkpoint_matches_uninterrupted_run(problem, fitted, tmp_path):
    dataset, targets, split = problem

    def kill_after_two(state):
        if state.epoch == 3:
            raise _Killed

    resume = tmp_path / "resume"
    with pytest.raises(_Killed):
        Neurrator(seed=0, **TINY).fit(dataset, targets, split, resume_dir=resume, on_validation=kill_after_two)
    assert (resume / "state.safetensors").is_file() and (resume / "state.json").is_file()
    resumed = Neurrator(seed=0, **TINY).fit(dataset, targets, split, resume_dir=resume, log_path=tmp_path / "log.csv")
    assert [h["val_metric"] for h in resumed.history_] == [h["val_metric"] for h in fitted.history_]
    for key, value in _weights(fitted).items():
        assert torch.equal(value, resumed.model_.state_dict()[key]), key
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [int(r["step"]) for r in rows] == [6, 12, 18, 24, 30, 36]
    assert {"train_loss", "val_metric", "seconds"} <= set(rows[0])


def test_step_budget_validates_every_k_steps_and_stops_at_the_cap(problem):
    dataset, targets, split = problem
    est = Neurrator(seed=0, **{**TINY, "max_epochs": 50, "max_steps": 10, "val_every": 4}).fit(dataset, targets, split)
    m = est.meta_.metrics
    assert m["stopped"] == "max_steps" and m["steps"] == 10
    assert [h["step"] for h in est.history_] == [4, 8, 10]  # every 4 steps, and at the cap
    assert [h["epoch"] for h in est.history_] == [0, 1, 1]  # 6 steps per epoch (192 windows / 32)


def test_patience_counts_validations(problem):
    dataset, targets, split = problem
    est = Neurrator(seed=0, **{**TINY, "max_epochs": 50, "lr": 1e-9, "patience": 2, "val_every": 2}).fit(
        dataset, targets, split)
    assert est.meta_.metrics["stopped"] == "early_stopping"
    assert len(est.history_) <= 2 + est.meta_.metrics["best_step"] // 2


def test_wall_time_safety_net_is_off_by_default_and_stops_when_set(problem):
    dataset, targets, split = problem
    assert EncoderConfig().max_minutes == 0 and EncoderConfig(preset="paper").resolved().max_minutes == 0
    est = Neurrator(seed=0, **{**TINY, "max_epochs": 50, "max_minutes": 1e-6}).fit(dataset, targets, split)
    assert est.meta_.metrics["stopped"] == "time_budget" and est.meta_.metrics["steps"] == 6


def test_resume_refuses_a_checkpoint_of_another_configuration(problem, tmp_path):
    dataset, targets, split = problem
    Neurrator(seed=0, **{**TINY, "max_epochs": 1}).fit(dataset, targets, split, resume_dir=tmp_path)
    with pytest.raises(InputError, match="different run"):
        Neurrator(seed=0, **{**TINY, "max_epochs": 1, "lr": 1e-3}).fit(dataset, targets, split, resume_dir=tmp_path)


def test_checkpoint_round_trip_and_mismatch_errors(problem, fitted, tmp_path):
    dataset, targets, split = problem
    written = fitted.save(tmp_path)
    assert {p.name for p in written} == {"checkpoint.safetensors", "checkpoint.json"}
    loaded = Neurrator.load(tmp_path, expect_units=dataset.unit_ids, expect_space=targets.info)
    assert torch.equal(loaded.predict(dataset, split.test[:10]), fitted.predict(dataset, split.test[:10]))
    meta = loaded.meta_
    assert meta.unit_ids == dataset.unit_ids.tolist() and meta.split["name"] == "repeats"
    assert meta.target_shape == [16, 8] and meta.seed == 0 and "neurrator" in meta.code_version
    assert len(meta.zscore_mean) == dataset.n_units

    with pytest.raises(InputError, match="units"):
        Neurrator.load(tmp_path, expect_units=dataset.unit_ids[:-1])
    with pytest.raises(InputError, match="column order"):
        Neurrator.load(tmp_path, expect_units=dataset.unit_ids[::-1])
    other_space = SpaceInfo("clip-vit-l14-336", (24, 24), 1024, "hidden_states[-2]", False)
    with pytest.raises(InputError, match="vision space"):
        Neurrator.load(tmp_path, expect_space=other_space)
    with pytest.raises(InputError, match="retrieval"):
        NeurratorRetriever.load(tmp_path)

    shuffled_units = dataset.units.iloc[::-1]
    wrong = NeuralDataset(dataset.stimulus, dataset.responses[..., ::-1], dataset.bins_per_frame, dataset.window,
                          dataset.pad, shuffled_units, ZScoreStats(dataset.zscore.mean[::-1], dataset.zscore.std[::-1]),
                          n_frames=dataset.n_frames)
    with pytest.raises(InputError, match="column order"):
        loaded.predict(wrong, split.test[:4])
    rescored = NeuralDataset(dataset.stimulus, dataset.responses, dataset.bins_per_frame, dataset.window, dataset.pad,
                             dataset.units, ZScoreStats(dataset.zscore.mean + 1, dataset.zscore.std),
                             n_frames=dataset.n_frames)
    with pytest.raises(InputError, match="z-scored"):
        loaded.predict(rescored, split.test[:4])
    wrong_targets = PatchTargets(targets.patches, other_space, "x")
    with pytest.raises(InputError, match="vision space"):
        loaded.score(dataset, split.test, wrong_targets)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        Neurrator.load(tmp_path)


def test_any_subset_one_model(problem, fitted):
    dataset, targets, split = problem
    visp = dataset.units["area"].to_numpy() == "VISp"
    by_spec = fitted.predict(dataset, split.test[:8], units="area:VISp")
    by_mask = fitted.predict(dataset, split.test[:8], units=visp)
    by_ids = fitted.predict(dataset, split.test[:8], units=dataset.unit_ids[visp])
    assert torch.equal(by_spec, by_mask) and torch.equal(by_spec, by_ids)
    assert not torch.equal(by_spec, fitted.predict(dataset, split.test[:8]))
    one_unit = fitted.predict(dataset, split.test[:8], units=dataset.unit_ids[:1])
    assert one_unit.shape == (8, 16, 8) and torch.isfinite(one_unit).all()
    # Tuned visual units carry the signal; the planted hippocampal units carry none.
    assert fitted.score(dataset, split.test, targets) > fitted.score(dataset, split.test, targets, units="area:CA1")
    with pytest.raises(InputError, match="not in this session"):
        fitted.predict(dataset, split.test[:2], units=[123456789])
    with pytest.raises(InputError, match="selects no units"):
        fitted.predict(dataset, split.test[:2], units=np.zeros(dataset.n_units, dtype=bool))


def test_subset_masks_span_one_unit_to_all():
    gen = torch.Generator().manual_seed(0)
    mask = augmentation_mask(4000, 500, unit_dropout=0.1, subset_fraction=0.5, generator=gen)
    kept = mask.sum(dim=1)
    assert kept.min() >= 1 and kept.max() <= 500
    assert (kept <= 3).sum() > 50  # log-uniform: small populations are common
    assert ((kept > 430) & (kept < 470)).sum() > 1500  # the other half: ordinary 10 % dropout
    plain = augmentation_mask(1000, 500, unit_dropout=0.1, subset_fraction=0.0, generator=gen)
    assert abs(plain.float().mean().item() - 0.9) < 0.01


def test_retrieval_variant_learns_frames(problem):
    dataset, targets, split = problem
    est = NeurratorRetriever(seed=0, **TINY).fit(dataset, targets, split)
    frames = est.predict(dataset, split.test)
    assert set(frames.tolist()) <= set(split.train_frames.tolist())
    near = np.abs(frames - split.test[:, 1]) <= 4
    assert near.mean() > 3 * (9 / 64)  # well above chance of landing within ±4 frames
    assert est.score(dataset, split.test, targets) > est.meta_.metrics["mean_patch_baseline"]


def test_group_subsets_keep_exactly_one_group():
    gen = torch.Generator().manual_seed(0)
    groups = torch.arange(300) % 3
    mask = augmentation_mask(2000, 300, unit_dropout=0.1, subset_fraction=1.0, generator=gen, groups=groups)
    one_group = [(len(torch.unique(groups[row])) == 1 and row.sum() == 100) for row in mask]
    assert 0.4 < np.mean(one_group) < 0.6  # half of the subset windows: one whole group


def test_mixup_mixes_windows_and_targets_alike():
    from neurrator.encoder.train import Mix

    x = torch.arange(12.0).view(3, 4)
    mix = Mix(torch.tensor([1, 2, 0]), torch.tensor([1.0, 0.5, 0.0]))
    mixed = mix.apply(x)
    assert torch.equal(mixed[0], x[0]) and torch.equal(mixed[1], 0.5 * x[1] + 0.5 * x[2]) and torch.equal(mixed[2], x[0])


@pytest.mark.parametrize("params", [{"mixup": 0.4}, {"loss_space": "whitened"}, {"rf_units": 8}])
def test_generalisation_options_train_and_beat_the_floor(problem, params):
    dataset, targets, split = problem
    est = Neurrator(seed=0, **{**TINY, **params}).fit(dataset, targets, split)
    assert est.meta_.metrics["val_cosine"] > est.meta_.metrics["mean_patch_baseline"] + 0.05


def test_retinotopy_finds_the_units_that_carry_a_patch():
    """Targets where patch 0 follows three otherwise unrelated units (the planted CA1 units fire
    independently of the movie): patch 0 listens to exactly them."""
    from neurrator.encoder.retinotopy import estimate_retinotopy, frame_responses

    dataset, targets, split = synthetic_problem(n_units=20, n_frames=240, n_repeats=4, n_patches=4, dim=3, seed=2)
    chosen = [16, 17, 19]  # the last 20 % are untuned
    frames, responses = frame_responses(dataset, split.train)
    patches = np.random.default_rng(0).normal(size=(240, 4, 3)).astype(np.float16) * 0.01
    patches[frames, 0, 0] += responses[:, chosen].sum(axis=1).astype(np.float16)
    planted = PatchTargets(patches, targets.info, "planted")
    support, weight, corr = estimate_retinotopy(dataset, planted, split.train, k=3)
    assert set(support[0].tolist()) == set(chosen)
    assert torch.allclose(weight.sum(dim=1), torch.ones(4))
