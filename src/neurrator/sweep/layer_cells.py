"""Cell kinds that call the pipeline's layers on a run's artefacts.

``encoder``: fit the Neurrator encoder (its public estimator) on one regime × unit subset ×
draw × seed of the run's ingested data and score its test windows with the embedding readout
(:func:`neurrator.evaluate.embedding.identification_summary`: frame identification, R@1/R@10,
median rank, CKA, each with its computed chance level).

``scaling``: one pool × size point of a scaling curve through the analysis's own code.

``benchmark``: one method × regime × seed × unit subset × session of ``neurrator benchmark``:
the same inputs (:func:`neurrator.runio.read_benchmark_inputs`), the same task, budget and
pure cell function (:func:`neurrator.evaluate.methods.run_cell`) and the same scoring
(:func:`neurrator.evaluate.benchmark.score_cell`), so a cell with seed offset 0 and every
unit reproduces the stage's row.
"""

from __future__ import annotations

import json

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


@SWEEP_CELLS.register("benchmark")
def benchmark_cell(cell: Cell, inputs: CellInputs) -> dict:
    """One benchmark method on one regime × seed × unit subset × session, scored like the
    benchmark stage's table (every metric with its interval, computed chance and raw p-value;
    Holm adjustment spans a whole table, so it is left to whoever assembles one) and its
    :class:`~neurrator.evaluate.methods.FitReport`. The budget, test windows and scoring
    settings are the run config's ``evaluate.benchmark`` ones, the same for every cell.

    Axes/params read:

    - ``method`` (required): a name of :data:`~neurrator.evaluate.methods.BENCHMARK_METHODS`;
    - ``regime``: a split name (default the run's active split);
    - ``seed``: offset added to the benchmark's seed for the fit (0 = the stage's fit; the
      scoring's bootstrap and permutation seeds stay the stage's);
    - ``subset`` (default ``all``) and ``draw`` (seeds ``random:N`` draws): the units the method sees;
    - ``session``: only that session's units (``session:<id>`` intersected with ``subset``).

    A method that does not apply (the train-stage checkpoint on another split or unit subset)
    gives a row with ``status="not_run"`` and the reason, as the stage's table notes it.
    """
    from neurrator import runio
    from neurrator.core.errors import InputError
    from neurrator.evaluate.benchmark import benchmark_settings, prepare_regime, run_method
    from neurrator.evaluate.methods import BENCHMARK_METHODS
    from neurrator.preprocess.subsets import subset_mask

    run = inputs.run
    config = inputs.cached(("config",), run.config)
    method_name = cell.get("method")
    if not method_name:
        raise InputError(None, "a benchmark cell needs a 'method' (axis or param)")
    bench = inputs.cached(("benchmark_inputs",), lambda: runio.read_benchmark_inputs(run, config, regimes=[]))
    regime = str(cell.get("regime", bench.active))
    budget, settings = config.evaluate.benchmark.active_budget(), benchmark_settings(config)

    def prepare():
        split = bench.splits.get(regime) or runio.read_regime_split(run, config, regime, bench.dataset)
        if split is None:
            raise InputError(None, f"regime {regime!r} has no split in this run (ingest/splits/) and is not a *_paper regime")
        return prepare_regime(bench, split, budget, settings)

    setup = inputs.cached(("benchmark_regime", regime), prepare)
    spec = str(cell.get("subset", "all"))
    if cell.get("session") is not None:
        spec = f"{spec}+session:{cell.get('session')}"
    mask = subset_mask(setup.task.dataset.units, spec, rng=np.random.default_rng(int(cell.get("draw", 0))))
    setup = setup.with_units(mask)
    seed = settings.seed + int(cell.get("seed", 0))
    method = BENCHMARK_METHODS.create(str(method_name), config=config)
    out = {"split": regime, "n_units": int(mask.sum()), "fit_seed": seed, "n_test_windows": len(setup.test),
           "leaky": setup.info.leaky, "budget": budget.label, "method_label": method.name}
    try:
        row = run_method(setup, method, budget, settings, seed=seed)
    except InputError as exc:
        return {**out, "status": "not_run", "reason": exc.problem}
    fit = row.fit
    out.update(status="done", family=row.family, iterative=row.iterative, steps=fit.steps,
               stop_reason=fit.stop_reason, best_step=fit.best_step, best_val_score=fit.best_val_score,
               fit_cpu_seconds=fit.cpu_seconds, fit_wall_seconds=fit.wall_seconds, n_parameters=fit.n_parameters)
    for key, m in row.metrics.items():
        out[key] = m.value
        out[f"{key}_lo"] = None if m.ci is None else m.ci.low
        out[f"{key}_hi"] = None if m.ci is None else m.ci.high
        out[f"{key}_chance"] = m.chance
        out[f"{key}_p"] = m.p_value
    out["method_row"] = json.dumps(row.to_dict())  # the typed row: MethodRow.from_dict(json.loads(...))
    return out
