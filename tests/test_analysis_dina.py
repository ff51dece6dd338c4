"""DINA analyses: probes, neuron importance and ablation, spatial saliency on a planted problem."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_analysis_fakes import toy_inputs

from neurrator.analysis.config import AnalysisConfig, DinaConfig
from neurrator.analysis.dina import analyse, responsiveness, run
from neurrator.analysis.inputs import SessionInputs
from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.encoder import NeurratorDINA
from neurrator.encoder.synthetic import synthetic_problem


@pytest.fixture(scope="module")
def fitted():
    torch.set_num_threads(1)
    dataset, targets, split = synthetic_problem(n_units=40, n_frames=64, n_repeats=5, n_patches=16, dim=8, seed=1)
    est = NeurratorDINA(seed=0, d_model=32, n_heads=2, ff_dim=64, conv_channels=16, unit_bottleneck=16, batch_size=32,
                        max_steps=120, val_every=40, progress=False, lr=2e-3, contrastive_dim=16)
    return est.fit(dataset, targets, split), dataset, targets, split


def test_dina_analysis_runs_and_its_figures_say_something(fitted, tmp_path):
    est, dataset, targets, split = fitted
    shots = np.arange(64) // 16
    config = DinaConfig(k_units=[1, 4, 16], n_random=2, max_windows=32)
    result = analyse(est, dataset, targets, np.concatenate([split.val, split.test]), split.train,
                     labels={"shot": shots}, config=config, tolerance=4)
    assert isinstance(result, AnalysisResult) and result.name == "dina"
    s, r = result.summary, result.results
    assert r["k"] == [1, 4, 16, 40] and set(r["curve"]) == {"gradient", "responsive", "random"}
    assert s["identification_all_units"] > 2 * s["chance"]  # the model decodes
    # Keeping the 16 units the gradient ranks highest beats keeping 16 random ones.
    assert r["curve"]["gradient"][2] >= r["curve"]["random"][2]
    assert s["probes"]["shot"]["accuracy"] > s["probes"]["shot"]["chance"]
    assert np.asarray(r["saliency"]).shape == (4, 4)
    # The planted CA1 units (the last 20 %) carry no signal: low gradient importance and responsiveness.
    grad = np.asarray(r["unit_gradient"])
    assert grad[-8:].mean() < grad[:32].mean()
    result.save(tmp_path)
    assert (tmp_path / "dina_ablation.png").is_file() and (tmp_path / "dina_saliency.png").is_file()


def test_responsiveness_is_zero_for_a_unit_that_ignores_the_stimulus(fitted):
    _, dataset, _, split = fitted
    resp = responsiveness(dataset, split.train)
    assert resp.shape == (dataset.n_units,) and np.all(resp >= 0)
    assert resp[-8:].mean() < 0.5 * resp[:32].mean()


def test_the_suite_runner_fits_dual_towers_on_the_runs_split_and_analyses_its_test_windows():
    """``neurrator analyze --only dina``: the runner fits DINA under ``analysis.dina`` with the
    run's encoder architecture, then analyses the split's test windows."""
    torch.set_num_threads(1)
    dataset, targets, split = synthetic_problem(n_units=40, n_frames=64, n_repeats=5, n_patches=16, dim=8, seed=1)
    _, inputs = toy_inputs()
    encoder = {"d_model": 32, "n_heads": 2, "ff_dim": 64, "conv_channels": 16, "unit_bottleneck": 16, "batch_size": 32, "lr": 2e-3,
                   "contrastive_dim": 16}
    config = AnalysisConfig(dina=DinaConfig(max_steps=80, val_every=40, k_units=[4, 16], n_random=2, max_windows=16))
    with pytest.raises(InputError, match="session"):
        run(inputs, config)
    inputs = replace(inputs, session=SessionInputs(dataset, split, targets, encoder), shot_of_frame=np.arange(64) // 16,
                     frame_rate=4.0)
    result = run(inputs, config)
    assert result.name == "dina" and result.inputs["fit"]["steps"] <= 80
    assert result.inputs["n_windows"] == len(split.test) and result.summary["tolerance_frames"] == 4
    assert result.results["k"] == [4, 16, 40] and "shot" in result.summary["probes"]
    assert result.summary["identification_all_units"] > result.summary["chance"]
