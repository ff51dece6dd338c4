"""Cell kinds that call the pipeline's layers on a run's artefacts.

``encoder``: fit the Neurrator encoder (its public estimator) on one regime × unit subset ×
draw × seed of the run's ingested data and score its test windows with the embedding readout
(:func:`neurrator.evaluate.embedding.identification_summary`: frame identification, R@1/R@10,
median rank, CKA, each with its computed chance level).
"""

from __future__ import annotations

import numpy as np

from neurrator.sweep.cells import SWEEP_CELLS, CellInputs
from neurrator.sweep.grid import Cell


def _run_inputs(inputs: CellInputs, regime: str):
    """(dataset z-scored for ``regime``, its split, the patch targets, the config), cached per
    worker process."""
    from neurrator import runio
    from neurrator.preprocess.dataset import rezscore

    run = inputs.run
    config = inputs.cached(("config",), run.config)
    base = inputs.cached(("dataset",), lambda: runio.read_dataset(run))
    split = inputs.cached(("split", regime), lambda: runio.read_split(run, regime))
    same = base.meta.get("split") == split.name and base.meta.get("split_seed") == split.seed
    dataset = base if same else inputs.cached(("dataset", regime), lambda: rezscore(base, split))
    targets = inputs.cached(("targets",), lambda: runio.read_targets(run))
    return dataset, split, targets, config


def _thin(pairs: np.ndarray, limit: int) -> np.ndarray:
    if not limit or len(pairs) <= limit:
        return pairs
    return pairs[np.unique(np.linspace(0, len(pairs) - 1, limit).round().astype(np.int64))]


@SWEEP_CELLS.register("encoder")
def encoder_cell(cell: Cell, inputs: CellInputs) -> dict:
    """Axes/params read: ``regime`` (split name, default the run's), ``subset`` (unit subset
    spec, default ``all``), ``draw`` (seeds ``random:N`` draws), ``seed`` (the fit),
    ``encoder`` (dict of encoder overrides), ``max_test_windows`` (evenly thinned, 0 = all)."""
    from neurrator.core.linalg import mean_patch
    from neurrator.encoder import Neurrator
    from neurrator.evaluate.embedding import identification_summary
    from neurrator.preprocess.dataset import select_units
    from neurrator.preprocess.subsets import subset_mask

    run_config = inputs.cached(("config",), inputs.run.config)
    regime = str(cell.get("regime", run_config.preprocess.split))
    dataset, split, targets, config = _run_inputs(inputs, regime)
    subset = str(cell.get("subset", "all"))
    mask = subset_mask(dataset.units, subset, rng=np.random.default_rng(int(cell.get("draw", 0))))
    data = dataset if mask.all() else select_units(dataset, mask)
    params = {**config.encoder.model_dump(exclude_unset=True), **dict(cell.get("encoder", {}) or {}),
              "progress": False}
    est = Neurrator(seed=int(cell.get("seed", 0)), **params).fit(data, targets, split)
    test = _thin(split.test, int(cell.get("max_test_windows", 0)))
    predicted = est.predict(data, test).numpy()
    mean_target = inputs.cached(("mean_target", regime), lambda: mean_patch(targets.patches, split.train_frames))
    stimulus_rate = 30.0 if dataset.stimulus.startswith("natural_movie") else None
    # The benchmark's headline readout: full patch tensors centred on the mean training target.
    m = identification_summary(predicted, test[:, 1], targets.patches, mean_target=mean_target, frame_rate=stimulus_rate)
    metrics = {"cka": m["cka"], "r1": m["r1"], "r10": m["r10"], "median_rank": m["median_rank"],
               "frame_id_within_tol": m["within_tol"], "r1_chance": m["r1_chance"], "r10_chance": m["r10_chance"],
               "median_rank_chance": m["median_rank_chance"], "frame_id_within_tol_chance": m["within_tol_chance"],
               "n_windows": m["n_windows"], "n_candidates": m["n_candidates"]}
    return {"n_units": int(mask.sum()), **metrics,
            "val_cosine": est.meta_.metrics["val_cosine"], "epochs": est.meta_.metrics["epochs"],
            "fit_seconds": est.meta_.metrics["seconds"], "stopped": est.meta_.metrics["stopped"]}


@SWEEP_CELLS.register("scaling")
def scaling_cell(cell: Cell, inputs: CellInputs) -> dict:
    """One point of a scaling curve (paper Fig. 4) through the analysis's own code
    (:func:`neurrator.analysis.scaling.run` restricted to one pool and one size): the run's
    trained encoder queried with ``n_draws`` random subsets of ``size`` units of ``pool``,
    narrated by the scaling narrator and scored (SBERT, R@10, SBERT gain over a shuffled
    pairing), mean and CI over the draws.

    Axes/params read: ``pool`` (a name of ``analysis.scaling.pools`` or a subset spec),
    ``size`` (int or ``"all"``), ``seed`` (offsets the run's seed: other draws), ``n_draws``.
    """
    from dataclasses import replace

    from neurrator import runio
    from neurrator.analysis import scaling

    run = inputs.run
    config = inputs.cached(("config",), run.config)
    analysis_inputs = inputs.cached(("analysis_inputs",), lambda: runio.read_analysis_inputs(run, config, frozenset()))
    pool, size = str(cell.get("pool", "all units")), cell.get("size", "all")
    spec = config.analysis.scaling.pools.get(pool, pool)
    sc = config.analysis.scaling.model_copy(update={
        "pools": {pool: spec}, "sizes": [size], "n_draws": int(cell.get("n_draws", config.analysis.scaling.n_draws))})
    analysis = config.analysis.model_copy(update={"scaling": sc})
    seeded = replace(analysis_inputs, seed=analysis_inputs.seed + int(cell.get("seed", 0)))
    data = scaling.run(seeded, analysis).results
    row = {"pool_spec": spec, "pool_size": data["pool_sizes"].get(pool, 0), "n_windows": data["n_windows"],
           "narrator": data["narrator"], "sbert_floor": data["floors"]["sbert"],
           "r_at_10_chance": data["floors"]["r_at_10"]}
    if not data["points"]:  # the size is not below the pool's: the pool itself is its "all" point
        return {**row, "skipped": True}
    point = data["points"][0]
    row.update(N=point["label"], units=point["size"], n_distinct_draws=point["n_distinct_draws"],
               ci_method=point["ci_method"], skipped=False)
    for metric, m in point["metrics"].items():
        row.update({metric: m["mean"], f"{metric}_lo": m["lo"], f"{metric}_hi": m["hi"]})
    return row
