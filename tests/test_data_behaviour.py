"""Behaviour in the data layer: the reader's running-speed and pupil layouts, the simulator's
planted running relation and pupil, and alignment of behaviour to a dataset's windows."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.data.allen import read_behaviour, read_session
from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import RUNNING_BETA, running_state, simulate_session
from neurrator.data.toy import toy_stimuli
from neurrator.data.types import Behaviour, RunningSpeed
from neurrator.preprocess.behaviour import behaviour_targets
from neurrator.preprocess.dataset import build_dataset


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    sim = simulate_session(toy_stimuli(n_frames=40), n_units=60, movie_repeats=4, scene_repeats=0, opto_trials=5,
                           genotype="Sst", seed=2)
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    write_allen_nwb(sim, path)
    return sim, path


def test_simulated_behaviour_round_trips_through_nwb(simulated):
    sim, path = simulated
    b = read_behaviour(path, ("natural_movie_one",))
    s = sim.session
    assert b.session_id == s.session_id and set(b.presentations) == {"natural_movie_one"}
    assert b.running_speed.source == "processing/running/running_speed"
    np.testing.assert_allclose(b.running_speed.speed, s.running_speed.speed, atol=1e-4)
    np.testing.assert_allclose(b.running_speed.times, s.running_speed.times, atol=1e-6)
    assert b.pupil_area.source == "processing/filtered_gaze_mapping/pupil_area"
    np.testing.assert_allclose(b.pupil_area.area, s.pupil_area.area, rtol=1e-6, equal_nan=True)
    assert np.isnan(b.pupil_area.area).any() and np.isfinite(b.pupil_area.area).mean() > 0.95
    full = read_session(path)
    assert full.pupil_area is not None and full.running_speed is not None


def test_truth_records_the_running_relation(simulated):
    sim, _ = simulated
    running = sim.truth["running"]
    assert running["mean_beta_by_population"]["VIP"] > running["mean_beta_by_population"]["SST"] > 0.3
    assert running["half_speed_cm_s"] > 0 and "running_beta" in sim.truth["units"]
    # graded, saturating, 0 at rest and 1 at the reference speed
    s = running_state(np.array([-3.0, 0.0, 5.0, 25.0, 1000.0]))
    assert s[0] == s[1] == 0 and 0 < s[2] < s[3] < s[4] and s[3] == pytest.approx(1.0)
    assert RUNNING_BETA["SST"] == running["mean_beta_by_population"]["SST"]


def test_pupil_follows_running(simulated):
    sim, _ = simulated
    s = sim.session
    speed = np.interp(s.pupil_area.times - 1.0, s.running_speed.times, s.running_speed.speed)
    ok = np.isfinite(s.pupil_area.area)
    r = np.corrcoef(running_state(speed[ok]), np.log(s.pupil_area.area[ok]))[0, 1]
    assert r > 0.3


def _series(group: h5py.Group, name: str, data, **datasets) -> None:
    ts = group.create_group(name)
    ts.create_dataset("data", data=data)
    for key, value in datasets.items():
        ts.create_dataset(key, data=value)


def _nwb(path, build) -> str:
    with h5py.File(path, "w") as f:
        f.create_dataset("general/session_id", data="123")
        build(f)
    return path


def test_running_speed_layouts(tmp_path):
    speed = np.array([1.0, 2.0, 3.0, 4.0])
    start = np.array([0.0, 1.0, 2.0, 3.0])

    def allen(f):  # BO 1.1: start times as timestamps, end times in a sibling series
        _series(f.require_group("processing/running"), "running_speed", speed, timestamps=start)
        _series(f.require_group("processing/running"), "running_speed_end_times", np.full(4, np.nan), timestamps=start + 0.5)

    b = read_behaviour(_nwb(tmp_path / "a.nwb", allen))
    np.testing.assert_allclose(b.running_speed.times, start + 0.25)
    np.testing.assert_allclose(b.running_speed.speed, speed)

    def acquisition(f):  # an AllenSDK writer that puts running speed into /acquisition
        _series(f.require_group("acquisition"), "running_speed", speed, timestamps=start)

    b = read_behaviour(_nwb(tmp_path / "b.nwb", acquisition))
    assert b.running_speed.source == "acquisition/running_speed"
    np.testing.assert_allclose(b.running_speed.times, start)

    def container(f):  # inside a BehavioralTimeSeries container, with (start, end) timestamp pairs
        _series(f.require_group("acquisition/BehavioralTimeSeries"), "speed", speed, timestamps=np.stack([start, start + 1]))

    b = read_behaviour(_nwb(tmp_path / "c.nwb", container))
    assert b.running_speed.source == "acquisition/BehavioralTimeSeries/speed"
    np.testing.assert_allclose(b.running_speed.times, start + 0.5)

    def raw_only(f):  # raw wheel signals are not speed
        _series(f.require_group("acquisition"), "raw_running_wheel_rotation", speed, timestamps=start)

    b = read_behaviour(_nwb(tmp_path / "d.nwb", raw_only))
    assert b.running_speed is None and b.pupil_area is None

    def broken(f):
        _series(f.require_group("processing/running"), "running_speed", speed, timestamps=start[:3])

    with pytest.raises(InputError, match=r"e\.nwb.*4 samples"):
        read_behaviour(_nwb(tmp_path / "e.nwb", broken))


def test_pupil_layouts(tmp_path):
    t = np.arange(5.0)

    def ellipse_fits(f):  # Allen's ellipse-fit table: half-axes; area = π max(w, h)²
        table = f.require_group("processing/eye_tracking/pupil_ellipse_fits")
        table.create_dataset("width", data=[1.0, 2.0, 1.0, 1.0, 3.0])
        table.create_dataset("height", data=[2.0, 1.0, 1.0, 1.0, 1.0])
        table.create_dataset("timestamps", data=t)

    b = read_behaviour(_nwb(tmp_path / "p1.nwb", ellipse_fits))
    np.testing.assert_allclose(b.pupil_area.area, np.pi * np.array([4.0, 4.0, 1.0, 1.0, 9.0]))

    def ellipse_series(f):  # newer files: acquisition/EyeTracking/pupil_tracking with an area column
        g = f.require_group("acquisition/EyeTracking/pupil_tracking")
        g.create_dataset("data", data=np.zeros((5, 2)))
        g.create_dataset("area", data=t * 10)
        g.create_dataset("timestamps", data=t)

    b = read_behaviour(_nwb(tmp_path / "p2.nwb", ellipse_series))
    np.testing.assert_allclose(b.pupil_area.area, t * 10)


def test_behaviour_targets_average_the_window(simulated):
    sim, _ = simulated
    s = sim.session
    ds = build_dataset([s], "natural_movie_one", "repeats")
    ramp = RunningSpeed(times=np.arange(0, 400, 0.01), speed=np.arange(0, 400, 0.01) * 2.0)
    b = Behaviour(s.session_id, ramp, None, s.presentations)
    y = behaviour_targets(b, ds, "running_speed")
    assert y.values.shape == (ds.n_repeats, ds.n_frames) and y.unit == "cm/s"
    movie = s.presentations["natural_movie_one"]
    start = movie[(movie["repeat"] == 1) & (movie["frame"] == 7)]["start_time"].iloc[0]
    # a linear ramp averages to its value at the window centre: 2 bins after the frame start
    assert y.values[1, 7] == pytest.approx(2.0 * (start + 2 / 120), rel=1e-4)
    with pytest.raises(InputError, match="no eye tracking"):
        behaviour_targets(b, ds, "pupil_area")
    none = Behaviour(s.session_id, None, None, s.presentations, source=None)
    with pytest.raises(InputError, match="has no running speed"):
        behaviour_targets(none, ds, "running_speed")
    gaps = RunningSpeed(times=np.array([0.0, 1.0]), speed=np.array([1.0, 1.0]))
    y = behaviour_targets(Behaviour(s.session_id, gaps, None, s.presentations), ds, "running_speed")
    assert np.isnan(y.values).all()  # outside the recorded time range: no target
