"""Neuron salience of a behaviour decoder: integrated gradients per unit, then ablations.

NLP4Neuro ranks neurons by salience and removes the most salient ones. Here:

1. **Integrated gradients** (captum's ``IntegratedGradients``) of the decoder's output with
   respect to its input window, from the all-absent baseline (z-score 0 for every unit, what a
   unit mask gives); a unit's salience is the mean over test windows of ``|Σ_t attribution|``.
   captum's completeness gap (``|Σ attribution − (f(x) − f(0))|`` relative to ``|f(x) − f(0)|``)
   is reported, so a too-coarse integration is visible.
2. **Top-k against random-k ablation**: the test loss (MSE of the z-scored behaviour) with the
   k most salient units masked, against the same with k random units (``n_random`` draws,
   Student-t interval), for several k.
3. **By area and by cell type**: salience per group, each group's share of the top decile, and
   the loss increase when the whole group is masked against as many random units. The random
   reference of a group is read off the random-k curve (``n_random`` draws at log-spaced sizes
   from 1 to all but one unit, linearly interpolated in log k), so that each group costs one
   evaluation rather than ``n_random + 1``.

``run(inputs) -> AnalysisResult``: explicit inputs, nothing written (the stage saves it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr

from neurrator.analysis.common import figure_png
from neurrator.analysis.result import AnalysisResult
from neurrator.core.errors import InputError
from neurrator.evaluate import stats


@dataclass(frozen=True)
class SalienceInputs:
    """What the salience analysis reads.

    Attributes
    ----------
    model : ``model(x (n, T, n_units), unit_mask (n_units,) or None) → (n, 1)`` z-scored behaviour
        (an :class:`~neurrator.encoder.lm_decoder.LMDecoderModel` with a behaviour head).
    windows : (n, T, n_units) float32 z-scored test windows.
    truth : (n,) the z-scored behaviour of those windows.
    units : (n_units,) table with ``area`` and ``cell_type`` (``None`` = untagged), in column order.
    behaviour : its name, for labels.
    fractions : k as fractions of the units (each at least one unit).
    n_random : random draws per k and per group.
    ig_steps : integration steps; ig_windows : windows attributed (evenly spaced).
    ablation_windows : windows the ablation losses are measured on (evenly spaced; 0 = all).
    seed : random draws.
    planted : a simulated session's ground truth per unit, in column order (``true_cell_type``,
        ``running_beta``; ``None`` for recordings): adds the groups by true cell type and the
        rank correlation of salience with the planted running gain.
    """

    model: torch.nn.Module
    windows: np.ndarray
    truth: np.ndarray
    units: pd.DataFrame
    behaviour: str = "running_speed"
    fractions: tuple[float, ...] = (0.02, 0.05, 0.1, 0.25)
    n_random: int = 5
    ig_steps: int = 16
    ig_windows: int = 96
    ablation_windows: int = 0
    batch_size: int = 128
    seed: int = 0
    planted: pd.DataFrame | None = None


def integrated_gradients(model: torch.nn.Module, windows: np.ndarray, *, steps: int, batch_size: int) -> tuple[np.ndarray, float]:
    """(n_units,) mean |Σ_t attribution| over ``windows`` and captum's median relative
    completeness gap."""
    from captum.attr import IntegratedGradients

    ig = IntegratedGradients(lambda x: model(x)[:, 0])
    total, gaps = None, []
    for lo in range(0, len(windows), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(windows[lo : lo + batch_size]))
        attr, delta = ig.attribute(x, baselines=torch.zeros_like(x), n_steps=steps,
                                   internal_batch_size=batch_size, return_convergence_delta=True)
        with torch.no_grad():
            change = (model(x)[:, 0] - model(torch.zeros_like(x))[:, 0]).abs()
        gaps.append((delta.abs() / change.clamp_min(1e-6)).detach().numpy())
        part = attr.detach().sum(dim=1).abs().sum(dim=0)
        total = part if total is None else total + part
    return (total / len(windows)).numpy().astype(np.float64), float(np.median(np.concatenate(gaps)))


@torch.no_grad()
def masked_loss(model: torch.nn.Module, windows: np.ndarray, truth: np.ndarray, keep: np.ndarray | None,
                batch_size: int) -> float:
    """Test MSE with only the units in ``keep`` (n_units,) bool (``None``: all)."""
    mask = None if keep is None else torch.from_numpy(keep)
    pred = torch.cat([model(torch.from_numpy(np.ascontiguousarray(windows[lo : lo + batch_size])), mask)[:, 0]
                      for lo in range(0, len(windows), batch_size)])
    return float(np.mean((pred.double().numpy() - truth) ** 2))


def run(inputs: SalienceInputs) -> AnalysisResult:
    """Salience, top-k against random-k ablations, and the group tables."""
    x, truth, units = inputs.windows, np.asarray(inputs.truth, dtype=np.float64), inputs.units
    n_units = x.shape[2]
    if len(units) != n_units or len(x) != len(truth) or len(x) < 2:
        raise InputError(None, f"salience needs matching windows ({x.shape}), truth ({len(truth)}) and units ({len(units)})")
    model = inputs.model.eval()
    rng = np.random.default_rng(inputs.seed)
    attributed = x[np.unique(np.linspace(0, len(x) - 1, min(inputs.ig_windows, len(x))).round().astype(int))]
    salience, gap = integrated_gradients(model, attributed, steps=inputs.ig_steps, batch_size=inputs.batch_size)
    if inputs.ablation_windows and len(x) > inputs.ablation_windows:
        pick = np.unique(np.linspace(0, len(x) - 1, inputs.ablation_windows).round().astype(int))
        x, truth = x[pick], truth[pick]
    base = masked_loss(model, x, truth, None, inputs.batch_size)
    order = np.argsort(-salience, kind="stable")

    def without(drop: np.ndarray) -> float:
        keep = np.ones(n_units, dtype=bool)
        keep[drop] = False
        return masked_loss(model, x, truth, keep, inputs.batch_size) - base if keep.any() else math.nan

    ks = sorted({max(1, min(n_units - 1, round(f * n_units))) for f in inputs.fractions})
    curve_ks = sorted(set(ks) | {int(k) for k in np.unique(np.geomspace(1, max(n_units - 1, 1), 6).round())})
    curve = {k: stats.t_interval([without(rng.choice(n_units, k, replace=False)) for _ in range(inputs.n_random)])
             for k in curve_ks}

    def random_increase(k: int) -> stats.Interval:
        """The random-k curve at ``k`` (interpolated in log k between measured sizes)."""
        if k in curve:
            return curve[k]
        log_ks = np.log(curve_ks)
        pick = [float(np.interp(np.log(k), log_ks, [getattr(curve[c], f) for c in curve_ks]))
                for f in ("mean", "low", "high")]
        return stats.Interval(*pick, curve[curve_ks[0]].level, inputs.n_random, "interpolated random-k curve")

    ablation = []
    for k in ks:
        rand = random_increase(k)
        ablation.append({"k": k, "fraction": k / n_units, "top_k_increase": without(order[:k]),
                         "random_increase": rand.mean, "random_low": rand.low, "random_high": rand.high})
    random_curve = [{"k": k, "random_increase": curve[k].mean, "random_low": curve[k].low,
                     "random_high": curve[k].high} for k in curve_ks]

    table = units[["area", "cell_type"]].copy() if "cell_type" in units else units[["area"]].assign(cell_type=None)
    table["cell_type"] = table["cell_type"].where(table["cell_type"].notna(), "untagged")
    table["area"] = table["area"].where(table["area"].notna(), "unknown")
    table["salience"] = salience
    decile = np.zeros(n_units, dtype=bool)
    decile[order[: max(1, n_units // 10)]] = True
    table["top_decile"] = decile
    columns = ["area", "cell_type"]
    planted = {}
    if inputs.planted is not None:
        if len(inputs.planted) != n_units:
            raise InputError(None, f"salience: ground truth of {len(inputs.planted)} units for {n_units} units")
        table["true_cell_type"] = inputs.planted["true_cell_type"].astype(str).to_numpy()
        table["running_beta"] = inputs.planted["running_beta"].to_numpy(dtype=np.float64)
        columns.append("true_cell_type")
        rho = spearmanr(salience, table["running_beta"])
        planted = {"planted": {"spearman_running_beta": float(rho.statistic), "spearman_p": float(rho.pvalue),
                               "note": "rank correlation of unit salience with the simulator's planted running "
                                       "gain running_beta (rate × exp(β · s(speed)))"}}
    groups = {column: _groups(table, column, without, random_increase) for column in columns}
    if "true_cell_type" in groups:
        for row in groups["true_cell_type"]:
            row["mean_running_beta"] = float(table.loc[table["true_cell_type"] == row["true_cell_type"],
                                                       "running_beta"].mean())

    per_unit = table.reset_index().rename(columns={table.index.name or "index": "unit_id"})
    summary = {
        "behaviour": inputs.behaviour, "n_units": n_units, "n_windows": len(inputs.windows),
        "n_attributed_windows": len(attributed), "ig_steps": inputs.ig_steps,
        "ig_median_relative_gap": gap, "base_loss": base,
        "ablation": ablation, "random_curve": random_curve, "by_area": groups["area"],
        "by_cell_type": groups["cell_type"], **({"by_true_cell_type": groups["true_cell_type"]} if planted else {}),
        **planted, "n_ablation_windows": len(x),
        "loss": "MSE of the z-scored behaviour on the test windows; increase = ablated − intact",
    }
    results = {**summary, "per_unit": per_unit.to_dict(orient="records")}
    used = {"n_random": inputs.n_random, "fractions": list(inputs.fractions), "seed": inputs.seed,
            "baseline": "all units absent (z-score 0)", "attribution": "captum IntegratedGradients"}
    top = ", ".join(f"{r['area']} {r['top_decile_share']:.0%}" for r in groups["area"][:3])
    line = (f"salience ({inputs.behaviour}): top-decile units by area {top}; removing the top "
            f"{ablation[-1]['k']} units raises the loss by {ablation[-1]['top_k_increase']:.3f} "
            f"(random: {ablation[-1]['random_increase']:.3f})")
    if planted:
        line += f"; Spearman ρ with the planted running gain {planted['planted']['spearman_running_beta']:.2f}"
    return AnalysisResult("salience", summary, results, used, figures={"salience.png": _figure(summary)}, line=line)


def _groups(table: pd.DataFrame, column: str, without, random_increase) -> list[dict]:
    rows = []
    n_top = int(table["top_decile"].sum())
    for name, members in table.groupby(column, sort=True):
        positions = np.flatnonzero(table[column].to_numpy() == name)
        ablated = without(positions) if len(positions) < len(table) else math.nan
        rand = random_increase(len(positions)) if len(positions) < len(table) else None
        rows.append({
            column: str(name), "n_units": len(members), "unit_share": len(members) / len(table),
            "mean_salience": float(members["salience"].mean()), "total_salience_share":
                float(members["salience"].sum() / max(table["salience"].sum(), 1e-30)),
            "top_decile_share": float(members["top_decile"].sum() / max(n_top, 1)),
            "ablation_increase": ablated,
            "random_increase": rand.mean if rand else math.nan,
            "random_low": rand.low if rand else math.nan, "random_high": rand.high if rand else math.nan,
        })
    return sorted(rows, key=lambda r: -r["total_salience_share"])


def _figure(summary: dict) -> bytes:
    import matplotlib.pyplot as plt

    panels = [("by_area", "area", "area"), ("by_cell_type", "cell_type", "cell type")]
    if "by_true_cell_type" in summary:
        panels.append(("by_true_cell_type", "true_cell_type", "true cell type (simulator)"))
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(4.4 * (len(panels) + 1), 3.6), layout="constrained")
    for ax, (key, label, title) in zip(axes, panels):
        rows = summary[key]
        names = [r[label] for r in rows]
        pos = np.arange(len(rows))
        ax.bar(pos - 0.2, [r["total_salience_share"] for r in rows], 0.4, label="salience share")
        ax.bar(pos + 0.2, [r["unit_share"] for r in rows], 0.4, label="unit share", color="0.7")
        ax.set_xticks(pos, names, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"salience by {title}", fontsize=9)
        ax.legend(fontsize=7)
    ab = summary["ablation"]
    k = [r["k"] for r in ab]
    axes[-1].plot(k, [r["top_k_increase"] for r in ab], "o-", label="top-k salient removed")
    axes[-1].errorbar(k, [r["random_increase"] for r in ab],
                     yerr=[[r["random_increase"] - r["random_low"] for r in ab], [r["random_high"] - r["random_increase"] for r in ab]],
                     fmt="s--", color="0.4", label="k random removed (95 % t-CI)")
    axes[-1].set_xscale("log")
    axes[-1].minorticks_off()
    axes[-1].set_xticks(k, [str(v) for v in k])
    axes[-1].set_xlabel("units removed (k)")
    axes[-1].set_ylabel("test loss increase")
    axes[-1].set_title(f"ablation ({summary['behaviour']})", fontsize=9)
    axes[-1].legend(fontsize=7)
    return figure_png(fig)
