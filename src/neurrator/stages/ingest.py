"""``neurrator ingest``: read sessions, keep QC-passing units, bin, z-score and cut splits.

Reads ``data.nwb_paths`` when ``data.source == "nwb"``, else the run's ``simulate/`` sessions,
pools every session into one frame-aligned pseudo-mouse (each unit keeps its session's
optotagged cell type) and writes:

- ``ingest/dataset/``: the :class:`NeuralDataset` z-scored with the active split
  (``preprocess.split``);
- ``ingest/split.json`` and ``ingest/splits/<name>.json``: the active split and every paper
  split valid for the stimulus;
- ``ingest/stimulus.json``: how to reload the stimulus, with its content hash;
- ``ingest/units.parquet``: all QC-passing units, with ``in_dataset`` for the subset kept.

Everything is computed before anything is written, so a bad file leaves no partial output.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np

from neurrator.config import RunConfig
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_dir
from neurrator.data.allen import read_session
from neurrator.data.download import download_session
from neurrator.data.optotag import OptotagRule
from neurrator.data.stimulus import check_stimulus_matches, choose_stimulus_dir, load_stimulus
from neurrator.data.stimulus_record import save_stimulus_record
from neurrator.data.types import SCENE_STIMULI
from neurrator.preprocess.dataset import (
    align_sessions,
    bins_per_frame_for,
    build_dataset,
    pooled_units,
)
from neurrator.preprocess.io import save_dataset, save_split, save_units
from neurrator.preprocess.splits import LEAKY_SPLITS, MOVIE_SPLITS, SCENE_SPLITS, make_split
from neurrator.preprocess.subsets import subset_mask
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def session_paths(run: RunDir, config: RunConfig) -> tuple[list[Path], bool]:
    """The NWB files to ingest (downloading ``data.dandi_assets`` first) and whether they are simulated."""
    data = config.data
    if data.source == "nwb":
        downloaded = [
            download_session("dandi", asset, data.download_dir, api_url=data.dandi_api_url) for asset in data.dandi_assets
        ]
        paths = [Path(p) for p in data.nwb_paths] + downloaded
        if not paths:
            raise InputError(None, "data.source is 'nwb' but data.nwb_paths and data.dandi_assets are empty")
        return paths, False
    index = run.require("simulate", "sessions.json")
    try:
        files = [run.stage_dir("simulate") / s["file"] for s in json.loads(index.read_text())["sessions"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(index, f"corrupt session index: {exc}") from None
    return files, True


def run(run: RunDir, config: RunConfig) -> StageResult:
    data, pp = config.data, config.preprocess
    names = SCENE_SPLITS if data.stimulus in SCENE_STIMULI else MOVIE_SPLITS
    allowed = names if data.stimulus in SCENE_STIMULI else (*names, *LEAKY_SPLITS)
    if pp.split not in allowed:
        raise InputError(None, f"split {pp.split!r} does not apply to {data.stimulus}; choose one of {', '.join(allowed)}")
    names = tuple(dict.fromkeys((*names, pp.split)))  # a leaky split is written only when asked for
    stimulus_dir = choose_stimulus_dir(data.stimulus_dir, recorded=data.source == "nwb",
                                       allow_demo=data.allow_demo_stimulus)
    paths, simulated = session_paths(run, config)
    opt = data.optotag
    rule = OptotagRule(
        pulse_duration=opt.pulse_duration, evoked_window=tuple(opt.evoked_window),
        baseline_window=tuple(opt.baseline_window), min_ratio=opt.min_ratio,
        baseline_offset_hz=opt.baseline_offset_hz, min_reliability=opt.min_reliability,
        max_median_latency=opt.max_median_latency,
    )
    sessions = [read_session(p, stimuli=(data.stimulus,), unit_filter=data.unit_filter, optotag_rule=rule) for p in paths]
    if simulated:
        sessions = [dataclasses.replace(s, is_simulated=True) for s in sessions]
    stimulus = load_stimulus(data.stimulus, stimulus_dir, data.captions_json, cache_dir=config.cache_dir)
    check_stimulus_matches(stimulus, sessions)
    if config.narrate.captioner == "bundled" and not stimulus.captions:  # fail now, not after training
        raise InputError(None, f"{data.stimulus} from {stimulus_dir} has no reference captions: set "
                               "data.captions_json=<file>, or narrate.captioner=blip2 (or llava) to caption the frames")

    # The unit subset decides which sessions join the pseudo-mouse; only those must align.
    all_units = pooled_units(sessions)
    keep = subset_mask(all_units, pp.subset, rng=np.random.default_rng(pp.split_seed))
    kept_ids = set(all_units.index[keep])
    chosen = [s.select_units(s.units.index[s.units.index.isin(kept_ids)].to_numpy()) for s in sessions]
    chosen = [s for s in chosen if s.n_units]
    grid = align_sessions(chosen, data.stimulus, stimulus.n_frames, bin_rate=pp.bin_rate,
                          max_alignment_error_bins=pp.max_alignment_error_bins)
    # The guard against shared time bins follows the window geometry and the training jitter.
    geometry = {"window": pp.window, "jitter": config.encoder.jitter_bins,
                "bins_per_frame": bins_per_frame_for(data.stimulus, pp.bin_rate, pp.scene_bins)}
    splits = {
        name: make_split(name, grid.n_repeats, grid.n_frames, pp.split_seed, val_fraction=pp.val_fraction,
                         test_fraction=pp.test_fraction, heldout_fraction=pp.heldout_frame_fraction, **geometry)
        for name in names
    }
    dataset = build_dataset(
        chosen, data.stimulus, splits[pp.split], bin_rate=pp.bin_rate, window=pp.window,
        n_frames=stimulus.n_frames, scene_bins=pp.scene_bins, max_alignment_error_bins=pp.max_alignment_error_bins,
    )
    dataset.meta["subset"] = pp.subset
    dataset.meta["stimulus_is_stand_in"] = stimulus.is_stand_in

    folder = run.stage_dir("ingest")
    save_dataset(dataset, folder / "dataset")
    with atomic_dir(folder / "splits") as tmp:  # replaced whole: no stale splits of another stimulus
        for name, split in splits.items():
            save_split(split, tmp / f"{name}.json")
    save_split(splits[pp.split], folder / "split.json")
    save_stimulus_record(folder / "stimulus.json", stimulus, stimulus_dir=data.stimulus_dir,
                         captions_json=data.captions_json, cache_dir=config.cache_dir)
    save_units(all_units.assign(in_dataset=keep), folder / "units.parquet")

    alignment = dataset.meta["alignment"]
    run.update_manifest(pseudo_mouse_alignment=alignment)
    if simulated:
        run.mark_stand_in("session", "simulated Allen-layout NWB sessions (neurrator.data.simulate), not recordings")
    summary = _summary(sessions, chosen, dataset, splits[pp.split], alignment)
    if stimulus.is_stand_in:
        run.mark_stand_in("stimulus", stimulus.description or "embedded demo stimulus")
        if not simulated:
            summary = (f"WARNING: recorded sessions paired with the embedded demo stimulus "
                       f"(data.allow_demo_stimulus=true): its frames are a stand-in, not what the mouse saw\n{summary}")
    return StageResult(summary=summary, outputs=[
        "ingest/dataset/", "ingest/split.json", "ingest/splits/", "ingest/stimulus.json", "ingest/units.parquet"])


def _summary(sessions, chosen, dataset, split, alignment) -> str:
    units = dataset.units
    areas = ", ".join(f"{a} {n}" for a, n in units["area"].value_counts().items())
    types = Counter(t for t in units["cell_type"] if t is not None)
    tagged = ", ".join(f"{t} {n}" for t, n in sorted(types.items())) or "none"
    kind = "pseudo-mouse of" if len(chosen) > 1 else "single session,"
    headline = (
        f"{dataset.stimulus}: {kind} {len(chosen)} session(s), {dataset.n_units} units in the dataset "
        f"({sum(s.n_units for s in sessions)} pass QC; subset '{dataset.meta['subset']}'), "
        f"{dataset.n_repeats} repeats × {dataset.n_frames} frames, "
        f"{dataset.bins_per_frame} bins/frame at {dataset.bin_rate:g} Hz"
    )
    lines = [
        headline,
        f"  areas: {areas}",
        f"  optotagged cell types: {tagged}",
        f"  split {split.name}: {len(split.train)} train / {len(split.val)} val / {len(split.test)} test samples ({split.description})",
        f"  cross-session alignment error: max {alignment['max_error_ms']:.2f} ms",
    ]
    return "\n".join(lines)
