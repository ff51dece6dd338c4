"""``neurrator ingest``: read sessions one at a time, keep QC-passing units, bin, z-score, cut splits.

Sessions come from ``data.manifest`` (a file listing many NWB files and DANDI assets, see
:mod:`neurrator.data.manifest`), ``data.nwb_paths`` and ``data.dandi_assets`` when
``data.source == "nwb"``, else from the run's ``simulate/`` folder. Each session is downloaded
(DANDI), read, checked against the stimulus, binned and z-scored on its own, written to
``ingest/sessions/<name>/`` and released before the next is read; a session already cached with
the same file and settings is not read again (:mod:`neurrator.preprocess.session_cache`). Then:

- ``ingest/sessions.json``: the cached sessions in order (what multi-session training reads);
- ``ingest/dataset/``: the frame-aligned pseudo-mouse of the units ``preprocess.subset`` keeps,
  z-scored with the active split, assembled session by session into a memory-mapped array
  (skipped with ``data.pseudo_mouse=false``);
- ``ingest/split.json``, ``ingest/splits/<name>.json``: the active split and every paper split
  valid for the stimulus, on the pooled grid;
- ``ingest/stimulus.json``: how to reload the stimulus; ``ingest/units.parquet``: every QC-passing
  unit, with ``in_dataset`` for the subset kept.

A corrupt file stops ingest with an error naming it; the sessions before it stay cached.
"""

from __future__ import annotations

import dataclasses
import shutil

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir
from neurrator.data.allen import read_session
from neurrator.data.manifest import session_sources
from neurrator.data.optotag import OptotagRule
from neurrator.data.stimulus import check_stimulus_matches, choose_stimulus_dir, load_stimulus
from neurrator.data.stimulus_record import save_stimulus_record
from neurrator.data.types import SCENE_STIMULI
from neurrator.preprocess.dataset import bins_per_frame_for
from neurrator.preprocess.io import save_split, save_units
from neurrator.preprocess.session_cache import (
    assemble_pseudo_mouse,
    cache_session,
    ingest_sessions,
    write_index,
)
from neurrator.preprocess.splits import LEAKY_SPLITS, MOVIE_SPLITS, SCENE_SPLITS
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    data, pp = config.data, config.preprocess
    names = SCENE_SPLITS if data.stimulus in SCENE_STIMULI else MOVIE_SPLITS
    allowed = names if data.stimulus in SCENE_STIMULI else (*names, *LEAKY_SPLITS)
    if pp.split not in allowed:
        raise InputError(None, f"split {pp.split!r} does not apply to {data.stimulus}; choose one of {', '.join(allowed)}")
    names = tuple(dict.fromkeys((*names, pp.split)))  # a leaky split is written only when asked for
    stimulus_dir = choose_stimulus_dir(data.stimulus_dir, recorded=data.source == "nwb",
                                       allow_demo=data.allow_demo_stimulus)
    index = None if data.source == "nwb" else run.require("simulate", "sessions.json")
    sources, simulated = session_sources(data, index)
    stimulus = load_stimulus(data.stimulus, stimulus_dir, data.captions_json, cache_dir=config.cache_dir)
    if config.narrate.captioner == "bundled" and not stimulus.captions:  # fail now, not after training
        raise InputError(None, f"{data.stimulus} from {stimulus_dir} has no reference captions: set "
                               "data.captions_json=<file>, or narrate.captioner=blip2 (or llava) to caption the frames")
    opt = data.optotag
    rule = OptotagRule(
        pulse_duration=opt.pulse_duration, evoked_window=tuple(opt.evoked_window),
        baseline_window=tuple(opt.baseline_window), min_ratio=opt.min_ratio,
        baseline_offset_hz=opt.baseline_offset_hz, min_reliability=opt.min_reliability,
        max_median_latency=opt.max_median_latency,
    )
    # The splits' guard against shared time bins follows the window geometry and the training jitter.
    split_kwargs = {"val_fraction": pp.val_fraction, "test_fraction": pp.test_fraction,
                    "heldout_fraction": pp.heldout_frame_fraction, "window": pp.window,
                    "bins_per_frame": bins_per_frame_for(data.stimulus, pp.bin_rate, pp.scene_bins),
                    "jitter": config.encoder.jitter_bins}
    binning = {"bin_rate": pp.bin_rate, "max_alignment_error_bins": pp.max_alignment_error_bins}
    settings = {"stimulus": data.stimulus, "stimulus_hash": stimulus.content_hash, "simulated": simulated,
                "unit_filter": data.unit_filter.model_dump(mode="json"), "optotag": opt.model_dump(mode="json"),
                "window": pp.window, "scene_bins": pp.scene_bins, "split": pp.split, "split_seed": pp.split_seed,
                **split_kwargs, **binning}

    def read(path):
        session = read_session(path, stimuli=(data.stimulus,), unit_filter=data.unit_filter, optotag_rule=rule)
        session = dataclasses.replace(session, is_simulated=simulated)
        check_stimulus_matches(stimulus, [session])
        return session

    def cache(session, folder, key):
        return cache_session(session, folder, key=key, stimulus_name=data.stimulus, n_frames=stimulus.n_frames,
                             split=pp.split, split_seed=pp.split_seed, split_kwargs=split_kwargs, window=pp.window,
                             scene_bins=pp.scene_bins, **binning)

    folder = run.stage_dir("ingest")
    cached, hits = ingest_sessions(sources, folder / "sessions", settings=settings, read=read, cache=cache,
                                   resolve=lambda s: s.resolve(data.download_dir, api_url=data.dandi_api_url))
    write_index(folder / "sessions.json", cached)
    save_stimulus_record(folder / "stimulus.json", stimulus, stimulus_dir=data.stimulus_dir,
                         captions_json=data.captions_json, cache_dir=config.cache_dir)
    if simulated:
        run.mark_stand_in("session", "simulated Allen-layout NWB sessions (neurrator.data.simulate), not recordings")
    if stimulus.is_stand_in:
        run.mark_stand_in("stimulus", stimulus.description or "embedded demo stimulus")
    caches = f"{len(cached)} session(s) in ingest/sessions/ ({hits} already cached, {len(cached) - hits} binned now)"
    if not data.pseudo_mouse:  # no pooled array: remove one a previous ingest left, it would be stale
        for stale in ("dataset", "splits", "split.json", "units.parquet"):
            path = folder / stale
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return StageResult(summary=f"{data.stimulus}: {caches}; no pseudo-mouse (data.pseudo_mouse=false)",
                           outputs=["ingest/sessions/", "ingest/sessions.json", "ingest/stimulus.json"])

    pm = assemble_pseudo_mouse(cached, folder / "dataset", stimulus_name=data.stimulus, split_names=names,
                               active=pp.split, subset=pp.subset, split_seed=pp.split_seed, split_kwargs=split_kwargs,
                               **binning)
    with atomic_dir(folder / "splits") as tmp:  # replaced whole: no stale splits of another stimulus
        for name, split in pm.splits.items():
            save_split(split, tmp / f"{name}.json")
    save_split(pm.splits[pp.split], folder / "split.json")
    save_units(pm.units, folder / "units.parquet")
    dataset = pm.dataset
    alignment = dataset.meta["alignment"]
    run.update_manifest(pseudo_mouse_alignment=alignment)
    summary = pm.describe(caches)
    if stimulus.is_stand_in and not simulated:
        summary = (f"WARNING: recorded sessions paired with the embedded demo stimulus "
                   f"(data.allow_demo_stimulus=true): its frames are a stand-in, not what the mouse saw\n{summary}")
    return StageResult(summary=summary, outputs=[
        "ingest/dataset/", "ingest/split.json", "ingest/splits/", "ingest/stimulus.json", "ingest/units.parquet",
        "ingest/sessions/", "ingest/sessions.json"])

