"""Simulated files pass nwbinspector without CRITICAL or BEST_PRACTICE_VIOLATION messages."""

from __future__ import annotations

from nwbinspector import Importance, inspect_nwbfile

from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import simulate_session
from neurrator.data.toy import toy_stimuli


def test_simulated_nwb_passes_nwbinspector(tmp_path):
    sim = simulate_session(toy_stimuli(n_frames=30, n_scenes=3), n_units=60, movie_repeats=2, scene_repeats=2,
                           opto_trials=5, genotype="Pvalb", seed=1)
    path = write_allen_nwb(sim, tmp_path / "session_0.nwb")
    messages = list(inspect_nwbfile(nwbfile_path=str(path)))
    serious = [m for m in messages if m.importance in (Importance.CRITICAL, Importance.BEST_PRACTICE_VIOLATION)]
    assert not serious, "\n".join(f"{m.importance.name} {m.check_function_name}: {m.message}" for m in serious)
