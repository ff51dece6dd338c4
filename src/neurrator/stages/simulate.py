"""``neurrator simulate``: write simulated Allen-layout NWB sessions into ``simulate/``.

One session per genotype of ``data.simulation.genotypes`` (default Pvalb, Sst, Vip), each
``simulate/session_<k>.nwb`` with its planted ground truth in ``simulate/session_<k>.truth.json``,
and ``simulate/sessions.json`` listing them for ``ingest``.
"""

from __future__ import annotations

from collections import Counter

from tqdm.auto import tqdm

from neurrator.config import RunConfig
from neurrator.core.io import atomic_dir, atomic_write_json
from neurrator.data.nwb_write import write_allen_nwb
from neurrator.data.simulate import simulate_session
from neurrator.data.stimulus import load_stimulus
from neurrator.rundir import RunDir
from neurrator.stages import StageResult

SESSION_INDEX = "sessions.json"


def run(run: RunDir, config: RunConfig) -> StageResult:
    sim = config.data.simulation
    folder = run.stage_dir("simulate")
    names = ["natural_movie_one"]
    if sim.scene_repeats > 0:
        names.append("natural_scenes")
    if sim.include_movie_three:
        names.append("natural_movie_three")
    stimuli = {
        name: load_stimulus(name, config.data.stimulus_dir, config.data.captions_json, cache_dir=config.cache_dir)
        for name in names
    }
    written, lines = [], []
    with atomic_dir(folder) as tmp:  # replaces simulate/ whole, only if every session succeeds
        for k, genotype in enumerate(tqdm(sim.session_genotypes(), desc="simulate sessions", unit="session")):
            session = simulate_session(
                stimuli, n_units=sim.n_units, areas=sim.areas, genotype=genotype, seed=sim.seed, session_index=k,
                movie_repeats=sim.movie_repeats, scene_repeats=sim.scene_repeats,
            )
            nwb = write_allen_nwb(session, tmp / f"session_{k}.nwb", waveform_mean=sim.waveform_mean)
            atomic_write_json(tmp / f"session_{k}.truth.json", session.truth, indent=None)
            written.append({"file": nwb.name, "session_id": session.session.session_id, "genotype": genotype})
            units = session.session.units
            types = Counter(units.loc[units["expresses_chr2"], "true_cell_type"])
            lines.append(
                f"session_{k}.nwb  id {session.session.session_id}  {genotype:<5}  {session.session.n_units} units, "
                f"{len(session.session.spikes.times):,} spikes, ChR2+ {dict(types) or 'none'}"
            )
        atomic_write_json(tmp / SESSION_INDEX, {"sessions": written})
    run.mark_stand_in(
        "session",
        "simulated Allen-layout NWB sessions (neurrator.data.simulate: planted pixel-level receptive-field "
        "model), not recordings",
    )
    outputs = [f"simulate/{w['file']}" for w in written] + [f"simulate/{SESSION_INDEX}"]
    summary = f"Simulated {len(written)} session(s) (stand-in for Allen recordings):\n  " + "\n  ".join(lines)
    return StageResult(summary=summary, outputs=outputs)
