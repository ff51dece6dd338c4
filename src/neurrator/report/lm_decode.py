"""The report section of ``neurrator lm-decode``: pretrained against random with intervals,
salience by area and cell type, and a trace of predicted against true running speed.

:func:`lm_decode_section` takes what :func:`neurrator.runio.read_lm_decode` returns (plain
dicts and DataFrames) and builds a :class:`~neurrator.report.content.Section`; it reads no
files. Every text goes into table cells, captions and notes, which the renderer escapes.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure as MplFigure

from neurrator.report.content import Figure, Note, Section, Table

TITLE = "Language-model decoders (NLP4Neuro)"
ANCHOR = "lm-decode"
LABELS = {"pretrained": "pretrained backbone", "random": "same backbone, random weights",
          "scratch": "transformer from scratch (matched trainable parameters)", "ridge": "ridge (closed form)",
          "shuffled": "pretrained, behaviour shifted in time (chance level)"}


def _interval(low, high) -> str:
    if low is None or high is None or not np.isfinite(low) or not np.isfinite(high):
        return "—"
    return f"[{low:.3f}, {high:.3f}]"


def comparison_tables(name: str, unit: str, summary: pd.DataFrame, tests: pd.DataFrame) -> list[Table]:
    """The per-condition scores and the pretrained-against-controls tests of one behaviour."""
    label = name.replace("_", " ")
    rows = [[LABELS.get(r.condition, r.condition), r.description, int(r.n_seeds), round(float(r.r2_mean), 3),
             _interval(r.r2_seed_low, r.r2_seed_high), _interval(r.r2_block_low, r.r2_block_high),
             round(float(r.rmse_mean), 3), _interval(r.rmse_block_low, r.rmse_block_high),
             int(r.trainable_parameters), round(float(r.seconds_per_fit), 1)] for r in summary.itertuples()]
    scores = Table(
        f"{label}: test R² and RMSE ({unit}) by condition",
        ["condition", "model", "seeds", "R² (mean)", "95 % CI over seeds", "95 % block CI", f"RMSE ({unit})",
         "RMSE block CI", "trainable parameters", "s / fit"],
        rows,
        note=f"Block CI: bootstrap over blocks of (repeat, 1 s) of the seed-averaged squared errors "
             f"({int(summary['n_blocks'].iloc[0]) if len(summary) else 0} blocks); R² = 1 − MSE / Var(test {label}).",
    )
    out = [scores]
    if len(tests):
        rows = [[LABELS.get(r.condition, r.condition), int(r.n_seeds), round(float(r.r2_difference), 3),
                 _p(r.seed_p), _p(r.seed_p_holm), _p(r.min_possible_seed_p), round(float(r.mse_difference), 3),
                 _p(r.block_p), _p(r.block_p_holm)] for r in tests.itertuples()]
        out.append(Table(
            f"{label}: pretrained against each control (paired Wilcoxon)",
            ["control", "seeds", "R² pretrained − control", "p (seeds)", "p Holm", "smallest possible p",
             "MSE control − pretrained", "p (blocks)", "p Holm (blocks)"],
            rows,
            note="Seeds: signed-rank test of R² paired by seed; blocks: on block means of the squared-error "
                 "difference. With n seeds a two-sided signed-rank p cannot go below 2/2ⁿ.",
        ))
    return out


def _p(value) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:.3g}"


def trace_png(trace: pd.DataFrame, *, unit: str, name: str, max_repeats: int = 3, dpi: int = 100) -> bytes:
    """True and predicted behaviour over the test windows of up to ``max_repeats`` repeats."""
    repeats = sorted(trace["repeat"].unique())[:max_repeats]
    fig = MplFigure(figsize=(10, 2.2 * len(repeats)), layout="constrained")
    for i, repeat in enumerate(repeats):
        ax = fig.add_subplot(len(repeats), 1, i + 1)
        part = trace[trace["repeat"] == repeat].sort_values("frame")
        ax.plot(part["frame"], part["truth"], color="black", lw=1.4, label="recorded")
        ax.plot(part["frame"], part["predicted"], color="tab:orange", lw=1.0, label="predicted (pretrained, seed 0)")
        if "predicted_seed_mean" in part:
            ax.plot(part["frame"], part["predicted_seed_mean"], color="tab:blue", lw=0.8, alpha=0.7,
                    label="predicted (mean over seeds)")
        ax.set_ylabel(f"{name.replace('_', ' ')} ({unit})", fontsize=8)
        ax.set_title(f"test repeat {repeat}", fontsize=9)
        if i == 0:
            ax.legend(fontsize=7, loc="upper right")
    ax.set_xlabel("stimulus frame")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def salience_tables(summary: dict) -> list[Table]:
    """Salience and ablation by area and by cell type, and the top-k against random-k ablation."""
    out = []
    planted = summary.get("planted")
    groups = [("by_area", "area", "area"), ("by_cell_type", "cell_type", "cell type (tagged)")]
    if "by_true_cell_type" in summary:
        groups.append(("by_true_cell_type", "true_cell_type", "true cell type (simulator ground truth)"))
    for key, label, title in groups:
        truth = key == "by_true_cell_type"
        rows = [[r[label], r["n_units"], round(r["unit_share"], 3), round(r["total_salience_share"], 3),
                 round(r["top_decile_share"], 3), _num(r["ablation_increase"]), _num(r["random_increase"]),
                 _interval(r["random_low"], r["random_high"])] + ([_num(r.get("mean_running_beta"))] if truth else [])
                for r in summary.get(key, [])]
        note = ("Salience: mean |Σ_t integrated gradient| per unit (captum; baseline: all units absent). "
                "Loss: test MSE of the z-scored behaviour.")
        if truth and planted:
            note += (f" Spearman ρ of unit salience with the planted running gain β: "
                     f"{planted['spearman_running_beta']:.3f} (p {_p(planted['spearman_p'])}).")
        out.append(Table(
            f"Salience by {title} ({summary.get('behaviour', '').replace('_', ' ')})",
            [label.replace("_", " "), "units", "unit share", "salience share", "share of top-decile units",
             "loss increase, group removed", "loss increase, as many random units", "random 95 % CI"]
            + (["mean planted running gain β"] if truth else []),
            rows, note=note,
        ))
    rows = [[r["k"], round(r["fraction"], 3), _num(r["top_k_increase"]), _num(r["random_increase"]),
             _interval(r["random_low"], r["random_high"])] for r in summary.get("ablation", [])]
    out.append(Table("Removing the k most salient units against k random units",
                     ["k", "fraction of units", "loss increase (top-k)", "loss increase (random k)", "random 95 % CI"],
                     rows, note=f"Intact test loss {summary.get('base_loss', float('nan')):.3f}; integrated-gradients "
                                f"median relative completeness gap {summary.get('ig_median_relative_gap', float('nan')):.3g}."))
    return out


def _num(value) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def vision_table(vision: dict) -> Table:
    runs = pd.DataFrame(vision["runs"])
    rows = [[LABELS.get(r.condition, r.condition), r.description, int(r.seed), round(float(r.test_cosine), 4),
             _interval(r.block_low, r.block_high), round(float(r.floor), 4), int(r.trainable_parameters),
             int(r.steps), round(float(r.seconds), 1)] for r in runs.itertuples()]
    tests = vision.get("tests") or {}
    return Table(
        "Vision head: test patch cosine (basis coefficients reconstructed to the patch grid)",
        ["condition", "model", "seed", "mean per-patch cosine", "95 % block CI", "mean-patch floor",
         "trainable parameters", "steps", "s"],
        rows,
        note=f"Pretrained − random on block means: mean difference {tests.get('mean_difference', float('nan')):.4f}, "
             f"Wilcoxon p {_p(tests.get('p_value'))} over {tests.get('n_blocks', 0)} blocks.",
    )


def lm_decode_section(outputs: dict, salience_png: bytes | None = None) -> Section:
    """The section for ``outputs`` (``{"summary", "tables"}`` of ``lm_decode/``)."""
    section = Section(TITLE, ANCHOR)
    summary, tables = outputs["summary"], outputs["tables"]
    settings = summary.get("settings", {})
    for name, part in summary.get("behaviours", {}).items():
        unit = part.get("unit", "")
        section.tables += comparison_tables(name, unit, tables.get(f"{name}_summary", pd.DataFrame(part["summary"])),
                                            tables.get(f"{name}_tests", pd.DataFrame(part["tests"])))
        trace = tables.get(f"{name}_trace")
        if trace is not None and len(trace) and name == "running_speed":
            section.figures.append(Figure(f"Predicted against recorded {name.replace('_', ' ')}",
                                          trace_png(trace, unit=unit, name=name),
                                          caption="test windows of the first test repeats, in frame order",
                                          source=f"lm_decode/{name}_trace.parquet"))
    if summary.get("salience"):
        section.tables += salience_tables(summary["salience"])
        if salience_png is not None:
            section.figures.append(Figure("Salience by area and cell type; ablation", salience_png,
                                          source="lm_decode/salience/salience.png"))
    if summary.get("vision"):
        section.tables.append(vision_table(summary["vision"]))
    budget = settings.get("budget", {})
    section.notes.append(Note(
        f"Session {settings.get('session_id')} ({settings.get('n_units')} units, subset '{settings.get('units')}'); "
        f"{settings.get('description')}; {settings.get('seq_bins')} tokens of one 120 Hz bin; backbone in "
        f"{settings.get('precision', 'float32')}; seeds "
        f"{settings.get('seeds')}; ≤ {budget.get('max_steps')} steps of {budget.get('batch_size')} windows, "
        f"validation every {budget.get('val_every')}, patience {budget.get('patience')}; "
        f"{settings.get('seconds')} s at load average {settings.get('load_average')}.", "info"))
    for note in summary.get("notes", []):
        section.notes.append(Note(note, "info"))
    return section
