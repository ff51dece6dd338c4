"""Realism of the simulator, each property checked against a figure from the literature.

One in-memory session (no NWB) of 400 units watching a 120-frame movie of photographs
10 times; measured from the spikes wherever possible.
"""

from __future__ import annotations

import ast
import inspect

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import neurrator.data.simulate as simulate_module
from neurrator.data.config import UnitFilterConfig
from neurrator.data.optotag import light_responses
from neurrator.data.simulate import CORTEX, FRAME_S, simulate_session
from neurrator.data.toy import toy_stimuli
from neurrator.preprocess.binning import bin_spikes, presentation_grid


@pytest.fixture(scope="module")
def sim():
    return simulate_session(toy_stimuli(n_frames=120, n_scenes=4), n_units=400, movie_repeats=10, scene_repeats=4,
                            opto_trials=30, genotype="Vip", seed=11)


@pytest.fixture(scope="module")
def counts(sim):
    """(repeats, frames, units) spike counts per 33 ms frame of natural_movie_one."""
    s = sim.session
    starts = presentation_grid(s.presentations["natural_movie_one"], 120)
    return bin_spikes(s.spikes, starts, bins_per_frame=4).reshape(len(starts), 120, 4, -1).sum(2)


def _units(sim) -> pd.DataFrame:
    return sim.session.units


def test_firing_rates_are_lognormal(sim):
    """Buzsáki & Mizuseki 2014: log-normal rates spanning decades (σ of ln rate ≈ 1)."""
    u = _units(sim)
    rates = u.loc[(u["true_cell_type"] == "excitatory") & u["area"].isin(CORTEX), "firing_rate"].to_numpy()
    log_rates = np.log(rates[rates > 0])
    assert 0.6 < log_rates.std() < 1.4
    assert abs(stats.skew(log_rates)) < 0.8 < stats.skew(rates)


def test_trial_to_trial_variability_is_overdispersed(sim, counts):
    """Fano factor of spike counts above 1 (≈1.2–2 in mouse/primate visual cortex; Churchland et al. 2010)."""
    locked = np.asarray(sim.truth["units"]["stimulus_locked"])
    windows = counts[:, : 120 // 8 * 8].reshape(counts.shape[0], -1, 8, counts.shape[2]).sum(2)  # 267 ms windows
    mean, var = windows.mean(0), windows.var(0, ddof=1)
    ok = (mean >= 1.0) & locked[None, :]
    fano = np.median(var[ok] / mean[ok])
    assert 1.1 < fano < 3.0


def test_latency_hierarchy_measured_from_spikes(sim):
    """Siegle et al. 2021: response latency LGd < VISp < higher visual areas.

    Each unit's latency is the lag (1 ms steps) maximising the correlation between its
    trial-averaged 1 ms PSTH and its planted frame-by-frame rate.
    """
    s, model = sim.session, sim.model
    starts = presentation_grid(s.presentations["natural_movie_one"], 120)
    pres = bin_spikes(s.spikes, starts, bin_rate=1000 * 30 / 33.0, bins_per_frame=33).mean(0)  # ≈1 ms bins
    predicted = np.repeat(model.rate(sim.drive["natural_movie_one"][:120]), 33, axis=0)
    lags = np.arange(0, 100)
    area = _units(sim)["area"].to_numpy()
    measured = {}
    for name in ("LGd", "VISp", "VISam", "VISpm"):
        est = []
        for i in np.flatnonzero((area == name) & model.visual & (model.base_rate > 2)):
            x, y = predicted[: -lags[-1], i], pres[:, i]
            corr = [np.corrcoef(x, y[lag : lag + len(x)])[0, 1] for lag in lags]
            est.append(lags[int(np.nanargmax(corr))])
        measured[name] = np.median(est)
    assert measured["LGd"] < measured["VISp"] < min(measured["VISam"], measured["VISpm"])
    assert 25 <= measured["LGd"] <= 50 and measured["VISam"] <= 80


def test_receptive_fields_grow_along_the_hierarchy(sim):
    """Planted RF σ: LGd < VISp < higher visual areas (Siegle et al. 2021; Wang & Burkhalter 2007)."""
    t = pd.DataFrame(sim.truth["units"])
    exc = t[t["true_cell_type"].isin(["excitatory", "LGd"])]
    size = exc.groupby("area")["rf_sigma_deg"].median()
    higher = size[["VISl", "VISal", "VISrl", "VISam", "VISpm"]]
    assert size["LGd"] < size["VISp"] < higher.min()


def test_running_raises_rates_most_for_vip(sim):
    """Niell & Stryker 2010 (≈2× in V1 during locomotion); Fu et al. 2014 (VIP strongly activated)."""
    s = sim.session
    speed = np.interp(s.spikes.times, s.running_speed.times, s.running_speed.speed)
    t_speed = s.running_speed.speed
    run_time, still_time = (t_speed > 10).mean(), (t_speed < 2).mean()
    assert run_time > 0.05 and still_time > 0.2
    owner = np.repeat(np.arange(s.n_units), s.spikes.counts())
    running = np.bincount(owner, weights=speed > 10, minlength=s.n_units) / run_time
    still = np.bincount(owner, weights=speed < 2, minlength=s.n_units) / still_time
    ratio = pd.Series((running + 1e-3) / (still + 1e-3), index=s.units.index)
    by_type = ratio.groupby(s.units["true_cell_type"]).median()
    assert 1.2 < by_type["excitatory"] < 3.0
    assert by_type["VIP"] > by_type["SST"] and by_type["VIP"] > by_type["excitatory"]


def test_hippocampus_is_not_stimulus_locked(sim, counts):
    """Visual units repeat their response across trials (split-half, 133 ms windows); hippocampal units do not."""
    windows = counts.reshape(counts.shape[0], -1, 4, counts.shape[2]).sum(2)
    even, odd = windows[0::2].mean(0), windows[1::2].mean(0)
    rel = np.array([np.corrcoef(even[:, i], odd[:, i])[0, 1] if even[:, i].std() and odd[:, i].std() else 0
                    for i in range(windows.shape[2])])
    area = _units(sim)["area"].to_numpy()
    assert np.median(rel[area == "VISp"]) > 0.3
    assert abs(np.median(rel[np.isin(area, ["CA1", "CA3", "DG"])])) < 0.1


def test_cell_types_have_distinct_properties(sim):
    """PV: fast-spiking (rates ≫ pyramidal, spikes < 0.4 ms); SST: large RFs (Adesnik 2012)."""
    u, t = _units(sim), pd.DataFrame(sim.truth["units"]).set_index("unit_id")
    rate = u.groupby("true_cell_type")["firing_rate"].median()
    assert rate["PV"] > 2 * rate["excitatory"]
    width = u.groupby("true_cell_type")["waveform_duration"].median()
    assert width["PV"] < 0.4 < width["excitatory"]
    cortex = t["area"].isin(CORTEX)
    sigma = t[cortex].groupby("true_cell_type")["rf_sigma_deg"].median()
    assert sigma["SST"] > 1.3 * sigma["excitatory"]


def test_optotagging_responses_identify_expressing_units(sim):
    s = sim.session
    light = light_responses(s.spikes, sim.optotagging)
    truth = s.units["expresses_chr2"].to_numpy()
    tagged = light["tagged"].to_numpy()
    assert truth.sum() >= 3 and set(s.units.loc[truth, "true_cell_type"]) == {"VIP"}
    assert (tagged & truth).sum() / truth.sum() > 0.9 and (tagged & ~truth).sum() <= 1
    assert light.loc[tagged, "median_latency"].between(0.001, 0.008).all()


def test_qc_metrics_have_failing_units(sim):
    u = _units(sim)
    f = UnitFilterConfig()
    failing = ((u["amplitude_cutoff"] > f.amplitude_cutoff_max) | (u["isi_violations"] > f.isi_violations_max)
               | (u["quality"] != "good"))
    assert 0.1 < failing.mean() < 0.4
    assert (u.loc[u["drifted_out"], "presence_ratio"] < 0.95).mean() > 0.8


def test_sessions_share_the_stimulus_sequence_but_not_unit_ids():
    stim = toy_stimuli(n_frames=20, n_scenes=3)
    a = simulate_session(stim, n_units=30, movie_repeats=2, scene_repeats=2, opto_trials=3, seed=2, session_index=0)
    b = simulate_session(stim, n_units=30, movie_repeats=2, scene_repeats=2, opto_trials=3, seed=2, session_index=1,
                         genotype="Sst")
    assert not set(a.session.units.index) & set(b.session.units.index)
    assert a.session.session_id != b.session.session_id
    for name in ("natural_movie_one", "natural_scenes"):
        np.testing.assert_array_equal(a.presentations[name]["frame"], b.presentations[name]["frame"])
    assert "repeat" not in a.presentations["natural_movie_one"]  # as in Allen files
    assert np.abs(a.presentations["natural_movie_one"]["start_time"] - b.presentations["natural_movie_one"]["start_time"]).max() < FRAME_S / 4


def test_neural_model_does_not_use_the_vision_space():
    tree = ast.parse(inspect.getsource(simulate_module))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and m.startswith(("neurrator.vision", "neurrator.encoder", "torch", "transformers")) for m in imported)
