"""The Allen NWB reader on simulated files: layout, QC filter, repeats, optotagging, bad input."""

from __future__ import annotations

import shutil
import sys

import h5py
import numpy as np
import pytest

from neurrator.core.errors import InputError
from neurrator.data.allen import derive_repeats, read_info, read_session, read_waveform_mean
from neurrator.data.config import UnitFilterConfig
from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import simulate_session
from neurrator.data.toy import toy_stimuli


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    sim = simulate_session(toy_stimuli(), n_units=120, movie_repeats=4, scene_repeats=3, opto_trials=20,
                           genotype="Pvalb", seed=5)
    path = tmp_path_factory.mktemp("nwb") / "session.nwb"
    write_allen_nwb(sim, path, waveform_mean=True)
    return sim, path


def test_reader_recovers_the_simulated_session(simulated):
    sim, path = simulated
    s = read_session(path, stimuli=("natural_movie_one", "natural_scenes"))
    truth = sim.session.units
    info = read_info(path)
    assert s.session_id == info.session_id == sim.session.session_id
    assert s.genotype.startswith("Pvalb-IRES-Cre") and s.session_type == "brain_observatory_1.1"
    # AllenSDK default filter, computed independently from the written metrics
    passes = ((truth["amplitude_cutoff"] <= 0.1) & (truth["presence_ratio"] >= 0.95)
              & (truth["isi_violations"] <= 0.5) & (truth["quality"] == "good") & truth["area"].notna())
    valid = sim.electrodes.loc[truth["peak_channel_id"], "valid_data"].to_numpy()
    assert set(s.units.index) == set(truth.index[passes.to_numpy() & valid])
    assert 0.15 < s.n_units / len(truth) < 0.95  # short file: low-rate units miss presence blocks
    assert not s.units["area"].str.contains("-").any()  # LGd-sh → LGd
    np.testing.assert_array_equal(s.units["area"], truth.loc[s.units.index, "area"])
    np.testing.assert_array_equal(s.units["depth"], truth.loc[s.units.index, "depth"])
    uid = s.units.index[3]
    np.testing.assert_array_equal(s.spikes.unit(3), sim.session.spikes.unit(truth.index.get_loc(uid)))
    movie = s.presentations["natural_movie_one"]
    assert movie["repeat"].max() == 3 and (movie.groupby("repeat").size() == 40).all()
    scenes = s.presentations["natural_scenes"]
    assert scenes["frame"].min() == -1 and (scenes.groupby("frame")["repeat"].max() == 2).all()
    assert s.running_speed is not None and len(s.running_speed.speed) > 1000


def test_optotagging_finds_the_expressing_units(simulated):
    sim, path = simulated
    s = read_session(path, unit_filter=None)
    expressing = sim.session.units.loc[s.units.index, "expresses_chr2"].to_numpy()
    tagged = (s.units["cell_type"] == "PV").to_numpy()
    assert expressing.sum() >= 2
    assert (tagged == expressing).mean() > 0.97
    assert set(s.units["cell_type"].dropna()) <= {"PV"}


def test_thresholds_can_be_overridden(simulated):
    _, path = simulated
    everything = read_session(path, unit_filter=None)
    assert everything.n_units == 120
    loose = read_session(path, unit_filter=UnitFilterConfig(amplitude_cutoff_max=None, presence_ratio_min=None,
                                                           isi_violations_max=None, quality=None))
    strict = read_session(path)
    assert strict.n_units < loose.n_units <= everything.n_units


def test_waveform_mean_is_read_only_on_request(simulated, monkeypatch):
    _, path = simulated
    touched = []
    original = h5py.Dataset.__getitem__

    def spy(self, key):
        touched.append(self.name)
        return original(self, key)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    s = read_session(path)
    assert touched and not any("waveform_mean" in name for name in touched)
    w = read_waveform_mean(path, s.units.index[:3].to_numpy())
    assert w.shape == (3, 82, 384) and any("waveform_mean" in name for name in touched)


def test_derive_repeats_from_frame_resets_within_blocks():
    import pandas as pd

    t = pd.DataFrame({"start_time": np.arange(12.0), "stimulus_name": "natural_movie_one",
                      "stimulus_block": [2] * 6 + [9] * 6, "frame": [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]})
    np.testing.assert_array_equal(derive_repeats(t), [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    shuffled = t.sample(frac=1, random_state=0)
    np.testing.assert_array_equal(derive_repeats(shuffled), derive_repeats(t)[shuffled.index])


# ---- bad input: every case names the file ---------------------------------------------------
def _copy(path, tmp_path, name="bad.nwb"):
    out = tmp_path / name
    shutil.copy(path, out)
    return out


def _edit_spike_times(path, edit):
    with h5py.File(path, "r+") as f:
        st = f["units/spike_times"][()]
        edit(st, f["units/spike_times_index"][()])
        f["units/spike_times"][...] = st


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "file not found"),
        ("text", "not an HDF5"),
        ("truncated", "truncated or damaged"),
        ("no_units", "no units table"),
        ("no_stimulus", "natural_movie_three_presentations"),
        ("nan", "NaN spike times"),
        ("negative", "negative spike times"),
        ("unsorted", "unsorted spike times"),
    ],
)
def test_bad_files_raise_input_errors_naming_the_file(simulated, tmp_path, case, match):
    _, good = simulated
    path = tmp_path / "bad.nwb"
    stimuli = ("natural_movie_one",)
    if case == "text":
        path.write_text("not an nwb file\n")
    elif case == "truncated":
        data = good.read_bytes()
        path.write_bytes(data[: len(data) // 3])
    elif case == "no_units":
        with h5py.File(path, "w") as f:
            f.create_group("intervals")
    elif case == "no_stimulus":
        path = _copy(good, tmp_path)
        stimuli = ("natural_movie_three",)
    elif case in ("nan", "negative", "unsorted"):
        path = _copy(good, tmp_path)

        def edit(st, ends):
            a, _b = ends[4], ends[5]  # inside the sixth unit
            if case == "nan":
                st[a + 1] = np.nan
            elif case == "negative":
                st[a] = -1.0
            else:
                st[a + 1], st[a + 2] = st[a + 2], st[a + 1]

        _edit_spike_times(path, edit)
    with pytest.raises(InputError, match=match) as err:
        read_session(path, stimuli=stimuli, unit_filter=None)
    assert err.value.path == path


def test_no_unit_passing_qc(simulated):
    _, path = simulated
    with pytest.raises(InputError, match="no unit passes QC") as err:
        read_session(path, unit_filter=UnitFilterConfig(presence_ratio_min=1.5))
    assert err.value.path == path


def test_cli_ingest_of_a_bad_file_exits_non_zero_without_output(tmp_path, monkeypatch, capsys):
    from neurrator import cli
    from neurrator.config import RunConfig
    from neurrator.rundir import RunDir

    bad = tmp_path / "broken.nwb"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    run = tmp_path / "run"
    RunDir.create(run, RunConfig())
    for argv in (
        ["neurrator", "ingest", "--run", str(run), "--set", "data.source=nwb", "--set", f"data.nwb_paths=[{bad}]"],
        ["neurrator", "ingest", "--run", str(run), "--set", "data.source=nwb", "--set", f"data.nwb_paths=[{tmp_path / 'nope.nwb'}]"],
    ):
        argv += ["--set", "data.allow_demo_stimulus=true"]  # get past the stimulus check to the NWB
        monkeypatch.setattr(sys, "argv", argv)
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 2
        assert "nwb" in capsys.readouterr().err
        assert not (run / "ingest" / "dataset").exists() and not (run / "ingest" / "split.json").exists()


def test_natural_movie_three_is_simulated_and_read(tmp_path):
    stimuli = toy_stimuli(n_frames=20, n_scenes=2)
    stimuli["natural_movie_three"] = type(stimuli["natural_movie_one"])(
        "natural_movie_three", stimuli["natural_movie_one"].frames[::-1].copy(), 30.0)
    sim = simulate_session(stimuli, n_units=20, movie_repeats=4, scene_repeats=1, opto_trials=2, seed=4)
    path = write_allen_nwb(sim, tmp_path / "nm3.nwb")
    s = read_session(path, stimuli=("natural_movie_three",), unit_filter=None)
    nm3 = s.presentations["natural_movie_three"]
    assert len(nm3) == 40 and nm3["repeat"].max() == 1 and nm3["frame"].max() == 19
