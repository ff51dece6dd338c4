"""Stimulus frames must fit the recording: frame count and size checked against the NWB's
presentations, no silent pairing of recordings with the demo stimulus, real runs named apart."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import simulate_session
from neurrator.data.stimulus import check_stimulus_matches, choose_stimulus_dir
from neurrator.data.toy import toy_stimuli
from neurrator.data.types import Stimulus
from neurrator.rundir import RunDir
from neurrator.stages import run_stage

N_FRAMES = 40


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A 40-frame Allen-layout NWB file ingested as a recording, and the frames it showed."""
    stimuli = toy_stimuli(n_frames=N_FRAMES)
    sim = simulate_session(stimuli, n_units=40, movie_repeats=5, scene_repeats=0, opto_trials=5, seed=3)
    path = tmp_path_factory.mktemp("nwb") / "session_123.nwb"
    write_allen_nwb(sim, path)
    return path, stimuli["natural_movie_one"].frames, dataclasses.replace(sim.session, source=path, is_simulated=False)


def _template(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "natural_movie_one.npy", frames)
    (folder / "captions.json").write_text(json.dumps({str(f): [f"frame {f}"] for f in range(len(frames))}))
    return folder


def _config(tmp_path, nwb, **sets):
    return RunConfig().with_overrides({
        "cache_dir": str(tmp_path / "cache"), "data.source": "nwb", "data.nwb_paths": [str(nwb)],
        "preprocess.val_fraction": 0.2, "preprocess.test_fraction": 0.2, **sets,
    })


def test_count_mismatch_names_both_counts(recorded):
    _, frames, session = recorded
    short = Stimulus("natural_movie_one", frames[:25], 30.0, description="template natural_movie_one.npy")
    with pytest.raises(InputError, match=r"show 40 frames .* but the stimulus has 25 frames") as err:
        check_stimulus_matches(short, [session])
    assert err.value.path == session.source


def test_size_mismatch_names_both_sizes_for_recordings_only(recorded):
    _, frames, session = recorded
    small = Stimulus("natural_movie_one", frames[:, :30, :60], 30.0)
    with pytest.raises(InputError, match=r"304×608 frames, but the stimulus frames are 30×60"):
        check_stimulus_matches(small, [session])
    # A simulated session was made from whatever frames it was given; only the count matters.
    check_stimulus_matches(small, [dataclasses.replace(session, is_simulated=True)])


def test_recordings_need_stimulus_frames_unless_demo_allowed(tmp_path):
    with pytest.raises(InputError, match="data.stimulus_dir=.*data.allow_demo_stimulus=true"):
        choose_stimulus_dir(None, recorded=True, allow_demo=False)
    assert choose_stimulus_dir(None, recorded=True, allow_demo=True) is None
    assert choose_stimulus_dir(None, recorded=False, allow_demo=False) is None
    assert choose_stimulus_dir(tmp_path, recorded=True, allow_demo=False) == tmp_path


def test_ingest_of_a_recording_with_its_template(recorded, tmp_path):
    nwb, frames, _ = recorded
    stim = _template(tmp_path / "templates", frames)
    config = _config(tmp_path, nwb, **{"data.stimulus_dir": str(stim), "data.captions_json": str(stim / "captions.json")})
    run = RunDir.create(tmp_path / "run", config)
    result = run_stage("ingest", run, config)
    assert "WARNING" not in result.summary
    assert "stimulus" not in run.manifest()["stand_ins"]


@pytest.mark.parametrize(
    ("frames_of", "needle"),
    [(lambda f: f[:20], "show 40 frames (0…39, 200 presentations), but the stimulus has 20 frames"),
     (lambda f: f[:, :30, :60], "were of 304×608 frames, but the stimulus frames are 30×60")],
)
def test_cli_refuses_a_template_that_does_not_fit(recorded, tmp_path, frames_of, needle):
    nwb, frames, _ = recorded
    stim = _template(tmp_path / "templates", frames_of(frames))
    out = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "ingest", "--run", str(tmp_path / "run"),
         "--set", "data.source=nwb", "--set", f"data.nwb_paths=[{nwb}]", "--set", f"data.stimulus_dir={stim}",
         "--set", f"data.captions_json={stim / 'captions.json'}", "--set", f"cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr and str(nwb) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "run" / "ingest" / "dataset").exists()


def test_demo_stimulus_with_a_recording_is_refused_or_said_aloud(recorded, tmp_path):
    nwb, _, _ = recorded
    config = _config(tmp_path, nwb)
    run = RunDir.create(tmp_path / "run", config)
    with pytest.raises(InputError, match="data.allow_demo_stimulus=true"):
        run_stage("ingest", run, config)
    # Allowed: the demo movie (900 frames) still has to fit the 40 frames this session showed.
    allowed = config.with_overrides({"data.allow_demo_stimulus": True})
    with pytest.raises(InputError, match="show 40 frames .* the stimulus has 900 frames"):
        run_stage("ingest", run, allowed)


def test_an_allowed_demo_stimulus_is_said_aloud(recorded, tmp_path, monkeypatch):
    import neurrator.stages.ingest as ingest

    nwb, _, _ = recorded
    demo = toy_stimuli(n_frames=N_FRAMES)["natural_movie_one"]  # a 40-frame stand-in "demo"
    demo = dataclasses.replace(demo, captions={f: ["x"] for f in range(N_FRAMES)}, description="demo movie")
    monkeypatch.setattr(ingest, "load_stimulus", lambda *a, **k: demo)
    config = _config(tmp_path, nwb, **{"data.allow_demo_stimulus": True})
    run = RunDir.create(tmp_path / "run", config)
    result = run_stage("ingest", run, config)
    assert result.summary.startswith("WARNING: recorded sessions paired with the embedded demo stimulus")
    assert run.manifest()["stand_ins"]["stimulus"] == "demo movie"


def test_ingest_of_a_recording_without_captions_fails_before_training(recorded, tmp_path):
    nwb, frames, _ = recorded
    stim = _template(tmp_path / "templates", frames)
    config = _config(tmp_path, nwb, **{"data.stimulus_dir": str(stim)})
    with pytest.raises(InputError, match="no reference captions: set data.captions_json=<file>, or narrate.captioner=blip2"):
        run_stage("ingest", RunDir.create(tmp_path / "run", config), config)
    blip = config.with_overrides({"narrate.captioner": "blip2"})
    run_stage("ingest", RunDir.create(tmp_path / "run2", blip), blip)


def test_a_real_data_run_is_named_after_its_session(recorded, tmp_path):
    nwb, frames, _ = recorded
    stim = _template(tmp_path / "templates", frames)
    out = subprocess.run(
        [sys.executable, "-m", "neurrator.cli", "ingest",
         "--set", "data.source=nwb", "--set", f"data.nwb_paths=[{nwb}]", "--set", f"data.stimulus_dir={stim}",
         "--set", f"data.captions_json={stim / 'captions.json'}", "--set", f"cache_dir={tmp_path / 'cache'}"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    manifest = json.loads((tmp_path / "runs" / "session_123" / "manifest.json").read_text())
    assert manifest["name"] == "session_123"
