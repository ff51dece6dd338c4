"""Everything ``neurrator lm-decode`` computes for one session, as one typed result.

:func:`decode_session` takes explicit inputs (the ingested dataset and split, the session's
behaviour, optional patch targets, the config) and returns an :class:`LMDecodeResult`; it writes
nothing. :meth:`LMDecodeResult.save` writes the folder the report reads back with
:func:`load_outputs`:

==============================  ================================================================
``summary.json``                settings, headline numbers, notes, stand-ins
``<behaviour>_runs.parquet``    one row per condition × seed (R², RMSE, parameters, seconds)
``<behaviour>_summary.parquet`` per condition: R² and RMSE with seed and block intervals
``<behaviour>_tests.parquet``   pretrained against each control: Wilcoxon (seeds, blocks), Holm
``<behaviour>_trace.parquet``   test windows: true and predicted behaviour (pretrained)
``vision_runs.parquet``         vision head: test patch cosine per condition × seed, floor
``salience/``                   :mod:`neurrator.analysis.salience` result (+ ``salience.png``)
``salience_units.parquet``      per-unit salience with area and cell type
``checkpoint_<target>/``        the pretrained seed-0 decoders (safetensors + JSON)
==============================  ================================================================

Behaviour is decoded from one session's units (a pseudo-mouse pools sessions whose animals
behaved independently), on a split of that session's repeats (``val_fraction``,
``test_fraction``; the dataset is re-z-scored with its training repeats). The vision head uses
the run's ingested dataset and active split, like the encoder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.data.types import Behaviour
from neurrator.encoder.lm_compare import Comparison, compare_behaviour, evenly
from neurrator.encoder.lm_config import LMDecodeConfig
from neurrator.encoder.lm_estimator import LMDecoder
from neurrator.evaluate import stats
from neurrator.preprocess.behaviour import behaviour_targets
from neurrator.preprocess.dataset import rezscore, select_units
from neurrator.preprocess.splits import make_split
from neurrator.preprocess.subsets import subset_mask
from neurrator.preprocess.types import NeuralDataset, Split
from neurrator.vision.base import PatchTargets

SUMMARY_FILE = "summary.json"
SALIENCE_DIR = "salience"


def checkpoint_name(target: str) -> str:
    """Folder of the saved decoder of ``target`` ("vision", "running_speed", "pupil_area")."""
    return f"checkpoint_{target}"

#: Conditions of behaviours other than running speed (a smaller comparison).
OTHER_CONDITIONS = ("pretrained", "random", "ridge")


@dataclass
class LMDecodeResult:
    """What :func:`decode_session` found.

    Attributes
    ----------
    comparisons : behaviour name → :class:`~neurrator.encoder.lm_compare.Comparison`.
    vision : one row per vision condition × seed (test cosine, mean-patch floor, ...), or ``None``.
    vision_tests : pretrained against random on block means of per-window cosine, or ``None``.
    salience : the salience analysis of the pretrained running-speed decoder, or ``None``.
    models : target name → the pretrained seed-0 :class:`LMDecoder` (saved as checkpoints).
    settings : session, units, backbone, budget, seeds, window counts, load and seconds.
    notes : what was skipped and why.
    """

    comparisons: dict[str, Comparison]
    vision: pd.DataFrame | None
    vision_tests: dict | None
    salience: AnalysisResult | None
    models: dict[str, LMDecoder]
    settings: dict
    notes: list[str] = field(default_factory=list)

    def headline(self) -> dict:
        """Per behaviour: pretrained and random R² (mean over seeds) and the seed-level p-value."""
        out = {}
        for name, comp in self.comparisons.items():
            summary = comp.summary().set_index("condition")
            tests = comp.tests()
            tests = tests.set_index("condition") if len(tests) else tests
            out[name] = {c: {"r2": float(summary.loc[c, "r2_mean"]), "rmse": float(summary.loc[c, "rmse_mean"])}
                         for c in summary.index}
            if "random" in tests.index:
                out[name]["pretrained_vs_random"] = {k: _plain(tests.loc["random", k]) for k in
                                                     ("r2_difference", "seed_p", "block_p", "min_possible_seed_p")}
        return out

    def line(self) -> str:
        parts = []
        for name, head in self.headline().items():
            text = ", ".join(f"{c} R² {v['r2']:.3f}" for c, v in head.items() if isinstance(v, dict) and "r2" in v)
            test = head.get("pretrained_vs_random")
            if test:
                text += f" (pretrained − random {test['r2_difference']:+.3f}, Wilcoxon p {test['seed_p']:.3g})"
            parts.append(f"{name}: {text}")
        if self.vision is not None:
            means = self.vision.groupby("condition")["test_cosine"].mean()
            parts.append("vision: " + ", ".join(f"{c} cosine {v:.3f}" for c, v in means.items())
                         + f" (mean-patch floor {self.vision['floor'].iloc[0]:.3f})")
        if self.salience is not None:
            parts.append(self.salience.line)
        return "\n".join(parts + [f"note: {n}" for n in self.notes])

    def save(self, folder: str | Path) -> list[Path]:
        """Write the stage folder's files (each atomically); returns their paths."""
        folder = Path(folder)
        paths = []
        for name, comp in self.comparisons.items():
            for kind, table in (("runs", comp.per_seed()), ("summary", comp.summary()), ("tests", comp.tests()),
                                ("trace", comp.trace())):
                paths.append(_parquet(table, folder / f"{name}_{kind}.parquet"))
        if self.vision is not None:
            paths.append(_parquet(self.vision, folder / "vision_runs.parquet"))
        if self.salience is not None:
            paths += self.salience.save(folder / SALIENCE_DIR)
            units = pd.DataFrame(self.salience.results["per_unit"])
            paths.append(_parquet(units, folder / "salience_units.parquet"))
        for target, model in self.models.items():
            paths += model.save(folder / checkpoint_name(target))
        summary = {
            "settings": self.settings, "headline": self.headline(), "notes": self.notes,
            "behaviours": {name: {"settings": comp.settings, "unit": comp.unit, "session_id": comp.session_id,
                                  "summary": comp.summary().to_dict(orient="records"),
                                  "tests": comp.tests().to_dict(orient="records")}
                           for name, comp in self.comparisons.items()},
            "vision": None if self.vision is None else {
                "runs": self.vision.to_dict(orient="records"), "tests": self.vision_tests},
            "salience": None if self.salience is None else self.salience.summary,
            "line": self.line(),
        }
        paths.append(atomic_write_json(folder / SUMMARY_FILE, summary))
        return paths


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _parquet(table: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        table.to_parquet(tmp)
    return path


def load_outputs(folder: str | Path) -> dict:
    """The saved outputs as plain objects: ``summary`` (dict) and ``tables`` (name → DataFrame).

    Raises :class:`InputError` naming an unreadable file.
    """
    folder = Path(folder)
    path = folder / SUMMARY_FILE
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "missing; run `neurrator lm-decode` first") from None
    except json.JSONDecodeError as exc:
        raise InputError(path, f"not valid JSON: {exc}") from None
    tables = {}
    for file in sorted(folder.glob("*.parquet")):
        try:
            tables[file.stem] = pd.read_parquet(file)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types
            raise InputError(file, f"not a readable parquet table: {exc}") from None
    return {"summary": summary, "tables": tables}


# ---------------------------------------------------------------------------------------------
# The computation
# ---------------------------------------------------------------------------------------------


def session_units(dataset: NeuralDataset, session: str, units: str, *, seed: int = 0) -> tuple[str, np.ndarray]:
    """The session id chosen by ``session`` (``"first"`` or an id) and the (n_units,) mask of its
    units selected by ``units``; :class:`InputError` if either selects nothing."""
    ids = [s["session_id"] for s in dataset.meta.get("sessions", [])]
    if "session_id" not in dataset.units:
        raise InputError(None, "the dataset's units carry no session_id; re-run `neurrator ingest`")
    chosen = (ids[0] if ids else str(dataset.units["session_id"].iloc[0])) if session == "first" else session
    in_session = dataset.units["session_id"].astype(str).to_numpy() == str(chosen)
    if not in_session.any():
        raise InputError(None, f"lm_decode.session {session!r} is not in the dataset (sessions: {', '.join(ids)})")
    picked = subset_mask(dataset.units, units, rng=np.random.default_rng(seed)) & in_session
    if not picked.any():
        raise InputError(None, f"lm_decode.units {units!r} selects no unit of session {chosen}")
    return str(chosen), picked


def decode_session(
    dataset: NeuralDataset,
    split: Split,
    behaviour: Behaviour,
    targets: PatchTargets | None,
    config: LMDecodeConfig,
    *,
    shot_of_frame: np.ndarray | None = None,
    frame_rate: float | None = 30.0,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    planted: pd.DataFrame | None = None,
) -> LMDecodeResult:
    """Behaviour comparisons, salience and the vision head for one session (see the module doc).

    ``planted`` : a simulated session's ground truth per unit, indexed by unit id
    (``true_cell_type``, ``running_beta``), for the salience analysis; ``None`` for recordings.
    """
    t_start = time.perf_counter()
    c = config
    session_id, mask = session_units(dataset, c.session, c.units, seed=seed)
    if str(behaviour.session_id) != session_id:
        raise InputError(behaviour.source, f"holds session {behaviour.session_id}, not the chosen {session_id}")
    decoder = {**c.decoder_params(cache_dir), "batch_size": c.batch_size, "max_steps": c.max_steps,
               "val_every": c.val_every, "patience": c.patience}
    seeds = [seed + k for k in range(c.seeds)]
    notes: list[str] = []

    # ---- behaviour: one session's units, a split of its repeats ----------------------------------
    behaviour_split = make_split("repeats", dataset.n_repeats, dataset.n_frames, seed,
                                 val_fraction=c.val_fraction, test_fraction=c.test_fraction,
                                 window=dataset.window, bins_per_frame=dataset.bins_per_frame)
    session_data = rezscore(select_units(dataset, mask), behaviour_split)
    comparisons, models, salience = {}, {}, None
    for name in c.behaviours:
        series = behaviour.running_speed if name == "running_speed" else behaviour.pupil_area
        if series is None and name == "pupil_area":
            notes.append(f"session {session_id} has no eye tracking: pupil area not decoded")
            continue
        y = behaviour_targets(behaviour, session_data, name)  # InputError when running speed is missing
        conditions = list(c.conditions) if name == "running_speed" else [x for x in OTHER_CONDITIONS if x in c.conditions]
        comp = compare_behaviour(session_data, y, behaviour_split, decoder=decoder,
                                 seeds=seeds if name == "running_speed" else seeds[: c.other_seeds], conditions=conditions,
                                 condition_seeds={"shuffled": seeds[: c.shuffled_seeds]},
                                 max_val_windows=c.max_val_windows, max_test_windows=c.max_test_windows,
                                 frame_rate=frame_rate, progress=c.progress, keep=("pretrained", seed))
        comparisons[name] = comp
        if comp.kept is not None:
            models[name] = comp.kept
        if name == "running_speed" and c.salience and comp.kept is not None:
            units_truth = None
            if planted is not None:
                missing = ~session_data.units.index.isin(planted.index)
                if missing.any():
                    notes.append(f"ground truth lacks {int(missing.sum())} of the session's units: salience not "
                                 "compared with the planted running gain")
                else:
                    units_truth = planted.loc[session_data.units.index]
            salience = _salience(comp, session_data, c, seed, units_truth)

    # ---- vision: the whole dataset, the run's split ---------------------------------------------
    vision = vision_tests = None
    if c.vision and targets is not None:
        vision, vision_tests, kept = _vision(dataset, split, targets, decoder, c, seed, shot_of_frame, frame_rate)
        models["vision"] = kept
    elif c.vision:
        notes.append("no patch targets (run `neurrator embed`): the vision head was not fitted")

    settings = {
        "session_id": session_id, "units": c.units, "n_units": int(mask.sum()), "backbone": c.backbone,
        "description": next(iter(comparisons.values())).runs[0].description if comparisons else "",
        "mode": c.mode, "n_layers": c.n_layers, "seq_bins": c.seq_bins, "precision": c.precision, "seeds": seeds,
        "budget": {"max_steps": c.max_steps, "val_every": c.val_every, "patience": c.patience,
                   "batch_size": c.batch_size, "lr": c.lr},
        "behaviour_split": {"name": "repeats", "val_fraction": c.val_fraction, "test_fraction": c.test_fraction,
                            "test_repeats": sorted({int(r) for r in behaviour_split.test[:, 0]})},
        "seconds": round(time.perf_counter() - t_start, 1), "load_average": [round(x, 2) for x in os.getloadavg()],
        "num_threads": c.num_threads,
    }
    return LMDecodeResult(comparisons, vision, vision_tests, salience, models, settings, notes)


def _salience(comp: Comparison, dataset: NeuralDataset, c: LMDecodeConfig, seed: int,
              planted: pd.DataFrame | None) -> AnalysisResult:
    from neurrator.analysis.salience import SalienceInputs, run

    model = comp.kept
    target = model.meta_.target
    windows = dataset.windows(comp.test_pairs)
    truth = (comp.truth - target["mean"]) / target["std"]
    return run(SalienceInputs(model.model_, windows, truth, dataset.units, behaviour=comp.behaviour,
                              fractions=tuple(c.ablation_fractions), n_random=c.ablation_draws, ig_steps=c.ig_steps,
                              ig_windows=c.ig_windows, ablation_windows=c.ablation_windows, seed=seed,
                              planted=planted))


def _vision(dataset, split, targets, decoder, c: LMDecodeConfig, seed, shot_of_frame, frame_rate):
    from neurrator.encoder.estimator import mean_patch_baseline
    from neurrator.encoder.model import patch_cosine

    test = evenly(split.test, c.max_test_windows)
    fit_split = replace(split, val=evenly(split.val, c.max_val_windows), test=test)
    blocks = stats.block_ids(test[:, 1], shot_of_frame=shot_of_frame, frame_rate=frame_rate)
    floor = mean_patch_baseline(targets, split.train_frames, test)
    true = targets.batch(test[:, 1])
    rows, per_window, kept = [], {}, None
    for condition in ("pretrained", "random"):
        for k in range(c.vision_seeds):
            t0 = time.perf_counter()
            est = LMDecoder(**{**decoder, "init": condition, "seed": seed + k}).fit(dataset, targets, fit_split)
            cos = patch_cosine(est.predict(dataset, test), true).mean(dim=1).double().numpy()
            per_window.setdefault(condition, []).append(cos)
            interval = stats.block_bootstrap_ci(cos, blocks, seed=seed)
            m = est.meta_.metrics
            rows.append({"condition": condition, "seed": seed + k, "test_cosine": float(cos.mean()),
                         "block_low": interval.low, "block_high": interval.high, "n_blocks": interval.n_blocks,
                         "floor": floor, "val_metric": m["val_metric"], "steps": m["steps"],
                         "trainable_parameters": m["trainable_parameters"],
                         "basis_explained_variance": m["basis_explained_variance"],
                         "seconds": round(time.perf_counter() - t0, 2), "description": est.model_.config.describe})
            if condition == "pretrained" and k == 0:
                kept = est
    test_result = stats.paired_test(np.mean(per_window["pretrained"], axis=0), np.mean(per_window["random"], axis=0),
                                    blocks).to_dict()
    test_result["n_test_windows"] = len(test)
    return pd.DataFrame(rows), test_result, kept
