"""DINA's analyses of a trained dual-tower model (:class:`~neurrator.encoder.NeurratorDINA`).

After Wang et al. 2026 (``shared/papers/dina-summary.txt``), on this project's inputs:

- **linear probes** of image content from the neural embedding: a logistic regression predicts
  a frame label (the shot; a category where the stimulus has one) from the joint-space embedding
  of each test window. Probes are trained on some repeats and tested on the others (no window of
  a tested repeat is seen by the probe), and compared with the computed majority-class chance;
- **neuron importance**, two ways: by gradient (mean |∂ cos(neural, image of the true frame) /
  ∂ input| over windows and time bins) and by responsiveness (variance across frames of the
  unit's mean response on training windows). **Ablation**: identification accuracy when only
  the k most important (or most responsive, or k random) units are kept, the rest set to
  z-score 0 — how much decoding survives with few units;
- **spatial saliency** over the image: the gradient of the same cosine with respect to the image
  tower's input patches, |∂cos/∂patch| summed over the patch's channels, averaged over windows,
  as a (grid_h, grid_w) map.

:func:`analyse` takes a fitted model and every input explicitly, writes nothing and returns an
:class:`AnalysisResult`. :func:`run` is the suite's runner (``neurrator analyze --only dina``):
it fits the dual towers on the run's training windows (the run's ``encoder`` architecture,
``analysis.dina`` training length, validation on the split's validation windows) and analyses
the test windows, every stimulus frame a candidate.
"""

from __future__ import annotations

import numpy as np
import torch

from neurrator.analysis.common import figure_png, single_threaded
from neurrator.analysis.config import AnalysisConfig, DinaConfig
from neurrator.analysis.inputs import AnalysisInputs
from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.core.sampling import evenly_spaced
from neurrator.encoder.model import _apply_unit_mask
from neurrator.encoder.train import WindowSampler
from neurrator.preprocess.types import NeuralDataset
from neurrator.vision.base import PatchTargets


def _identify(model, dataset: NeuralDataset, pairs: np.ndarray, frame_emb: torch.Tensor, candidates: np.ndarray,
              tolerance: int, units: np.ndarray | None = None) -> float:
    """Fraction of windows whose best candidate (joint-space cosine) is within ``tolerance`` frames."""
    neural = model.embed(dataset, pairs, units=units)
    best = candidates[(neural @ frame_emb.T).argmax(dim=1).numpy()]
    return float((np.abs(best - pairs[:, 1]) <= tolerance).mean())


def _gradients(model, dataset: NeuralDataset, targets: PatchTargets, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_units,) mean |∂cos/∂input| and (n_patches,) mean |∂cos/∂patch| over ``pairs``."""
    net = model.model_.eval()
    x = WindowSampler(dataset).gather(pairs).requires_grad_(True)
    patches = targets.batch(pairs[:, 1]).float().requires_grad_(True)
    neural = net.decode(*net.body(_apply_unit_mask(x, None)))
    image = net.embed_frames(patches)
    (neural * image).sum().backward()
    unit = x.grad.abs().mean(dim=(0, 1)).numpy()
    spatial = patches.grad.abs().sum(dim=2).mean(dim=0).numpy()
    return unit, spatial


def responsiveness(dataset: NeuralDataset, train_pairs: np.ndarray) -> np.ndarray:
    """(n_units,) variance across frames of each unit's mean window response over the training
    repeats (stimulus-locked variance; 0 for units that ignore the stimulus)."""
    frames = np.unique(train_pairs[:, 1])
    sampler = WindowSampler(dataset)
    means = np.zeros((len(frames), dataset.n_units), dtype=np.float64)
    for i, frame in enumerate(frames):
        rows = train_pairs[train_pairs[:, 1] == frame]
        means[i] = sampler.gather(rows).mean(dim=(0, 1)).numpy()
    return means.var(axis=0)


def _probe(embeddings: np.ndarray, labels: np.ndarray, repeats: np.ndarray, seed: int) -> dict:
    """Logistic-regression probe trained on half the repeats, tested on the other half."""
    from sklearn.linear_model import LogisticRegression

    order = np.unique(repeats)
    test_repeats = np.random.default_rng(seed).permutation(order)[: max(1, len(order) // 2)]
    test = np.isin(repeats, test_repeats)
    if test.all() or not test.any() or len(np.unique(labels[~test])) < 2:
        return {"accuracy": float("nan"), "chance": float("nan"), "n_test": int(test.sum())}
    with single_threaded():
        probe = LogisticRegression(max_iter=2000, C=1.0).fit(embeddings[~test], labels[~test])
    accuracy = float((probe.predict(embeddings[test]) == labels[test]).mean())
    values, counts = np.unique(labels[~test], return_counts=True)
    chance = float((labels[test] == values[counts.argmax()]).mean())  # majority class of the probe's training set
    return {"accuracy": accuracy, "chance": chance, "n_test": int(test.sum()), "n_classes": len(values)}


def run(inputs: AnalysisInputs, config: AnalysisConfig) -> AnalysisResult:
    """Fit :class:`~neurrator.encoder.NeurratorDINA` on the run's training windows, then
    :func:`analyse` it on the test windows (the suite's runner)."""
    from neurrator.encoder import NeurratorDINA
    from neurrator.preprocess.types import by_frame

    if inputs.session is None:
        raise InputError(None, "the dina analysis needs the session itself (AnalysisInputs.session)")
    cfg, s = config.dina, inputs.session
    params = {**s.encoder_params, "max_steps": cfg.max_steps, "val_every": cfg.val_every, "patience": cfg.patience,
              "max_epochs": cfg.max_steps, "max_minutes": 0.0, "progress": False}
    model = NeurratorDINA(seed=inputs.seed, **params).fit(s.dataset, s.targets, s.split)
    tolerance = round(cfg.tolerance_s * inputs.frame_rate) if inputs.frame_rate else 0
    labels = {"shot": inputs.shot_of_frame} if inputs.shot_of_frame is not None else None
    result = analyse(model, s.dataset, s.targets, by_frame(s.split.test), s.split.train, labels=labels,
                     config=cfg, tolerance=tolerance, seed=inputs.seed)
    m = model.meta_.metrics
    result.inputs.update({
        "fit": {"steps": int(m["steps"]), "stopped": str(m["stopped"]), "best_step": int(m["best_step"]),
                "val_cosine": float(m["val_cosine"]), "temperature": float(m["temperature"]),
                "n_parameters": int(m["n_parameters"]), "encoder": s.encoder_params},
        "stand_ins": dict(inputs.stand_ins),
    })
    return result


def analyse(
    model,
    dataset: NeuralDataset,
    targets: PatchTargets,
    test_pairs: np.ndarray,
    train_pairs: np.ndarray,
    *,
    candidates: np.ndarray | None = None,
    labels: dict[str, np.ndarray] | None = None,
    config: DinaConfig | None = None,
    tolerance: int = 30,
    seed: int = 0,
) -> AnalysisResult:
    """Probes, neuron importance with ablation, and spatial saliency of a fitted NeurratorDINA.

    Parameters
    ----------
    model : a fitted :class:`~neurrator.encoder.NeurratorDINA`.
    dataset, targets : the session and the vision-space targets it was trained with.
    test_pairs : (n, 2) windows analysed (held out from training).
    train_pairs : (m, 2) training windows (responsiveness is measured on them only).
    candidates : frames identification chooses among (default: every frame).
    labels : per-frame labels to probe, e.g. ``{"shot": shot_of_frame}`` (n_frames,) each.
    config : :class:`~neurrator.analysis.config.DinaConfig` (ablation sizes, random draws,
        gradient windows).
    tolerance : frames within which an identification counts as correct (30 = 1 s at 30 Hz).
    seed : random unit draws and probe fits.
    """
    config = DinaConfig() if config is None else config
    test_pairs = np.asarray(test_pairs, dtype=np.int64).reshape(-1, 2)
    candidates = np.arange(targets.n_frames) if candidates is None else np.asarray(candidates, dtype=np.int64)
    frame_emb = model.embed_frames(targets, candidates)
    rng = np.random.default_rng(seed)

    # ---- probes --------------------------------------------------------------------------
    embeddings = model.embed(dataset, test_pairs).numpy()
    probes = {name: _probe(embeddings, np.asarray(values)[test_pairs[:, 1]], test_pairs[:, 0], seed)
              for name, values in (labels or {}).items()}

    # ---- neuron importance and ablation ------------------------------------------------------
    grad_pairs = test_pairs[evenly_spaced(len(test_pairs), config.max_windows)]
    unit_grad, spatial = _gradients(model, dataset, targets, grad_pairs)
    response = responsiveness(dataset, np.asarray(train_pairs, dtype=np.int64))
    n_units = dataset.n_units
    ks = sorted({k for k in config.k_units if k < n_units} | {n_units})
    orders = {"gradient": np.argsort(-unit_grad, kind="stable"), "responsive": np.argsort(-response, kind="stable")}
    curve = {name: [] for name in (*orders, "random")}
    for k in ks:
        for name, order in orders.items():
            keep = np.zeros(n_units, dtype=bool)
            keep[order[:k]] = True
            curve[name].append(_identify(model, dataset, test_pairs, frame_emb, candidates, tolerance, keep))
        draws = []
        for _ in range(config.n_random if k < n_units else 1):
            keep = np.zeros(n_units, dtype=bool)
            keep[rng.choice(n_units, size=k, replace=False)] = True
            draws.append(_identify(model, dataset, test_pairs, frame_emb, candidates, tolerance, keep))
        curve["random"].append(float(np.mean(draws)))
    full = curve["gradient"][-1]
    near = np.abs(candidates[None] - test_pairs[:, 1][:, None]) <= tolerance
    chance = float(near.mean())
    survive = {name: {str(k): (v - chance) / max(full - chance, 1e-12) for k, v in zip(ks, values, strict=True)}
               for name, values in curve.items()}
    grid = targets.info.grid if np.prod(targets.info.grid) == len(spatial) else (1, len(spatial))
    saliency = spatial.reshape(grid)

    figures = {"dina_ablation.png": _ablation_png(ks, curve, chance), "dina_saliency.png": _saliency_png(saliency)}
    summary = {
        "identification_all_units": full, "chance": chance, "tolerance_frames": tolerance,
        "probes": {n: {k: p[k] for k in ("accuracy", "chance")} for n, p in probes.items()},
        "units_for_90pct_of_decoding": {name: _units_for(ks, values, chance, full, 0.9) for name, values in curve.items()},
        "saliency_peak_patch": [int(i) for i in np.unravel_index(int(saliency.argmax()), saliency.shape)],
    }
    results = {"k": ks, "curve": curve, "survival": survive, "probes": probes,
               "unit_gradient": unit_grad.tolist(), "unit_responsiveness": response.tolist(),
               "saliency": saliency.tolist()}
    inputs = {"model": "NeurratorDINA", "n_windows": len(test_pairs), "n_gradient_windows": len(grad_pairs),
              "n_units": n_units, "n_candidates": len(candidates), "labels": sorted(labels or {}),
              "config": config.model_dump(mode="json"), "tolerance_frames": tolerance, "seed": seed, "space": targets.info.space_id,
              "space_is_stand_in": targets.info.is_stand_in}
    line = (f"DINA: identification ±{tolerance} frames {full:.3f} (chance {chance:.3f}); "
            + "; ".join(f"{n} probe {p['accuracy']:.3f} (chance {p['chance']:.3f})" for n, p in probes.items()))
    return AnalysisResult("dina", summary, results, inputs, figures=figures, line=line)


def _units_for(ks: list[int], values: list[float], chance: float, full: float, fraction: float) -> int | None:
    """Fewest units (among ``ks``) whose accuracy reaches ``fraction`` of the above-chance decoding."""
    for k, v in zip(ks, values, strict=True):
        if v - chance >= fraction * (full - chance):
            return int(k)
    return None


def _ablation_png(ks, curve, chance) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    for name, values in curve.items():
        ax.plot(ks, values, marker="o", ms=3, label=f"top-k by {name}" if name != "random" else "k random units")
    ax.axhline(chance, color="grey", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("units kept")
    ax.set_ylabel("identification (±tolerance)")
    ax.legend(fontsize=7, frameon=False)
    return figure_png(fig)


def _saliency_png(saliency: np.ndarray) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.4, 3.0))
    im = ax.imshow(saliency, cmap="magma")
    ax.set_title("spatial saliency |∂cos/∂patch|", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    fig.colorbar(im, ax=ax, fraction=0.046)
    return figure_png(fig)
