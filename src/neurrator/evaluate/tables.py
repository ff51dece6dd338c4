"""Markdown tables of evaluation results, built in the evaluate layer (stages only print them).

:func:`render_benchmark` turns a :class:`~neurrator.evaluate.results.BenchmarkTable` into
Tables A1 (both scoring definitions), A2, A3, within-shot and zero-shot identification. Every
title carries the budget mode ("quick" or "full"); every column states its readout; chance
levels are the computed ones in the table; paper numbers come from
:mod:`neurrator.evaluate.paper` with their protocol, and only beside the quantity they measure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from neurrator.evaluate import paper
from neurrator.evaluate.results import BenchmarkTable, Metric


def fmt(value: float | None, kind: str = "float") -> str:
    """Format one cell: ``"float"``/``"score"`` (3 decimals), ``"pct"``/``"fraction"`` (%), ``"int"``/``"rank"``, ``"p"``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind in ("pct", "fraction"):
        return f"{100 * value:.1f}%" if value >= 0.01 or value == 0 else f"{100 * value:.2f}%"
    if kind in ("int", "rank"):
        return f"{value:.0f}"
    if kind == "p":
        return f"{value:.1e}" if value < 1e-3 else f"{value:.3f}"
    return f"{value:.3f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, title: str | None = None,
                   note: str | None = None) -> str:
    """A GitHub-style Markdown table, columns padded for terminal reading."""
    cells = [list(map(str, header)), *[list(map(str, r)) for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
    out = [f"**{title}**", ""] if title else []
    out += [line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells[1:])]
    if note:
        out += ["", note]
    return "\n".join(out)


def stand_in_note(stand_ins: dict[str, str]) -> str | None:
    """One line naming the stand-ins that make a run's numbers not comparable to the paper's."""
    if not stand_ins:
        return None
    return "Stand-in run (" + "; ".join(sorted(stand_ins)) + "): paper numbers are for reference only."


def cell(m: Metric | None, kind: str = "score", *, ci: bool = True, chance: bool = False, p: bool = False) -> str:
    """One metric as ``value [low, high]`` (+ ``chance c``, + Holm ``p``); ``n/a`` when not applicable."""
    if m is None:
        return "—"
    if not m.applicable:
        return "n/a"
    text = fmt(m.value, kind)
    if ci and m.ci is not None and not m.ci.degenerate:
        text += f" [{fmt(m.ci.low, kind)}, {fmt(m.ci.high, kind)}]"
    if chance and m.chance is not None:
        text += f" (chance {fmt(m.chance, kind)})"
    if p and m.p_holm is not None:
        text += f" p={fmt(m.p_holm, 'p')}"
    return text


def _paper(family: str, table: str, column: str, kind: str = "score") -> str:
    n = paper.for_method(family, table, column)
    return fmt(n.value, kind) if n is not None else "—"


def render_benchmark(table: BenchmarkTable) -> str:
    """Tables A1 (held-out caption; released-script compatible), A2, A3, within-shot, zero-shot."""
    mode = "quick" if table.budget.quick else "full"
    ctx = table.context
    regimes = [r for r in table.regimes if r != table.active] or [table.active]
    active = table.regimes[table.active]
    parts = [(f"Budget ({table.budget.label}). Every iterative method trains on all training windows and "
              f"early-stops on the same validation windows; closed-form methods use all training windows. "
              f"Narrator: {ctx.get('narrator', '—')}; scorer: {ctx.get('scorer', '—')}.")]
    leak = [f"{r}: {'LEAKY ' if table.regimes[r].leaky else ''}overlap {fmt(table.regimes[r].leakage.get('overlap'), 'pct')}"
            f", guard {table.regimes[r].leakage.get('guard_frames')} frames" for r in table.regimes]
    parts.append("Splits (test windows sharing a time bin with training/validation windows): " + "; ".join(leak) + ".")

    # A1, headline: held-out caption (rows that ran on at least one of the regimes shown).
    methods = [m for m in table.methods() if any(table.row(r, m) for r in regimes)]
    rows = []
    for method in methods:
        row = [method]
        for r in regimes:
            row += [cell(table.metric(r, method, "sbert"), p=True), cell(table.metric(r, method, "sbert_shuffled"), ci=False),
                    cell(table.metric(r, method, "copy_rate"), "fraction", ci=False)]
        rows.append(row)
    header = ["Method"] + [h for r in regimes for h in (f"{r} SBERT", "other-shot", "copy")]
    parts.append(markdown_table(
        header, rows, title=f"Table A1 (headline, held-out caption) [{mode}]",
        note=f"SBERT = {table.columns['sbert'].definition}. other-shot = {table.columns['sbert_shuffled'].definition}. "
             f"copy = {table.columns['copy_rate'].definition}. [95% block-bootstrap CI]; p: block-level Wilcoxon vs "
             "other-shot, Holm-corrected within this table's family."))

    # A1, released-script compatible, with the paper beside it.
    rows = []
    for method in methods:
        family = next(r.family for r in table.rows if r.method == method)
        row = [method]
        for r in regimes:
            row += [cell(table.metric(r, method, "released")), cell(table.metric(r, method, "copy_rate"), "fraction",
                                                                    ci=False), _paper(family, "A1", r.removesuffix("_paper"))]
        rows.append(row)
    floor = ["released floor (mean over methods)"]
    for r in regimes:
        vals = [table.metric(r, m, "released_floor") for m in methods]
        vals = [v.value for v in vals if v is not None and v.applicable]
        floor += [fmt(sum(vals) / len(vals)) if vals else "—", "", _paper("floor", "A1", r.removesuffix("_paper"))]
    rows.append(floor)
    parts.append(markdown_table(
        ["Method"] + [h for r in regimes for h in (f"{r} (released)", "copy", "paper A1")], rows,
        title=f"Table A1 (released-script compatible) [{mode}]",
        note=f"released = {table.columns['released'].definition}; floor = {table.columns['released_floor'].definition}. "
             f"Paper A1 = {paper.PROTOCOLS[paper.NEURRATOR]}; the paper's regimes are its leaky definitions, ours are "
             "leakage-free."))

    # A2 on the active split.
    rows = []
    for method in table.methods(table.active):
        family = table.row(table.active, method).family
        m = table.row(table.active, method).metrics
        rows.append([method, cell(m.get("cka"), ci=False, chance=True), cell(m.get("cka_pooled"), ci=False, chance=True),
                     cell(m.get("knn_purity"), ci=False, chance=True), cell(m.get("r10"), "fraction"),
                     cell(m.get("median_rank"), "rank", ci=False), _paper(family, "A2", "cka"),
                     _paper(family, "A2", "r10", "fraction"), _paper(family, "A2", "median_rank", "rank")])
    ref = active.reference
    rows.append(["shot oracle", cell(ref.get("shot_oracle_cka"), ci=False), cell(ref.get("shot_oracle_cka_pooled"), ci=False),
                 "", "", "", "", "", ""])
    any_row = next((r for r in table.rows if r.regime == table.active), None)
    if any_row:
        rows.append(["chance", "per row", "per row", "per row", fmt(any_row.metrics["r10"].chance, "fraction"),
                     fmt(any_row.metrics["median_rank"].chance, "rank"), "", "", ""])
    parts.append(markdown_table(
        ["Method", "CKA", "CKA (pooled)", "kNN purity", "R@10", "median rank", "paper CKA", "paper R@10", "paper median"],
        rows, title=f"Table A2: embedding level, split {table.active} [{mode}]",
        note=f"CKA/kNN purity on full patch tensors; chance = 95th percentile of permuted pairings. Shot oracle = "
             f"mean target of the true shot ({active.blocks}). R@10 / median rank: {table.columns['r10'].definition}."))

    # A3 on the active split.
    rows = []
    for method in table.methods(table.active):
        r = table.row(table.active, method)
        m = r.metrics
        rows.append([method, _params(r.fit.n_parameters), cell(m.get("r1"), "fraction", p=True),
                     cell(m.get("within_1s"), "fraction"), cell(m.get("within_1s_pooled"), "fraction", ci=False),
                     _paper(r.family, "A3", "mean_r1", "fraction"), _fit(r.fit)])
    if any_row:
        rows.append(["chance", "—", fmt(any_row.metrics["r1"].chance, "fraction"),
                     fmt(any_row.metrics["within_1s"].chance, "fraction"),
                     fmt(any_row.metrics["within_1s_pooled"].chance, "fraction"), _paper("chance", "A3", "mean_r1", "fraction"),
                     ""])
    cebra = "; ".join(f"{n.row}: {fmt(n.value, 'fraction')}" for n in paper.peer_results(paper.CEBRA))
    parts.append(markdown_table(
        ["Method", "Params", "frame R@1", "±1 s", "±1 s (pooled)", "paper R@1 (mean of 4 sessions)", "fit"], rows,
        title=f"Table A3: frame identification, split {table.active} [{mode}]",
        note=f"One readout for every row: {table.columns['r1'].definition}. Another protocol, not comparable: "
             f"{paper.PROTOCOLS[paper.CEBRA]}: {cebra}."))

    # Within-shot identification, every regime.
    rows = [[m] + [cell(table.metric(r, m, "within_shot_r1"), "fraction") for r in table.regimes] for m in table.methods()]
    chance_row = ["chance"]
    for r in table.regimes:
        any_m = next((x for x in table.rows if x.regime == r), None)
        chance_row.append(fmt(any_m.metrics["within_shot_r1"].chance, "fraction") if any_m else "—")
    rows.append(chance_row)
    parts.append(markdown_table(["Method", *table.regimes], rows, title=f"Within-shot frame identification R@1 [{mode}]",
                                note=table.columns["within_shot_r1"].definition + f" ({active.blocks})."))

    # Zero-shot identification on the regimes that hold frames out.
    held = [r for r, info in table.regimes.items() if info.holds_out_frames]
    if held:
        rows = []
        for m in [m for m in table.methods() if any(table.row(r, m) for r in held)]:
            row = [m]
            for r in held:
                row += [cell(table.metric(r, m, "zero_shot_r1"), "fraction", ci=False),
                        cell(table.metric(r, m, "zero_shot_r10"), "fraction", ci=False),
                        cell(table.metric(r, m, "zero_shot_within_1s"), "fraction", ci=False)]
            rows.append(row)
        chance_row = ["chance"]
        for r in held:
            any_m = next((x for x in table.rows if x.regime == r and x.answers_unseen_frames), None)
            for k in ("zero_shot_r1", "zero_shot_r10", "zero_shot_within_1s"):
                chance_row.append(fmt(any_m.metrics[k].chance, "fraction") if any_m else "—")
        rows.append(chance_row)
        parts.append(markdown_table(
            ["Method"] + [h for r in held for h in (f"{r} R@1", "R@10", "±1 s")], rows,
            title=f"Zero-shot identification: candidates = held-out frames only [{mode}]",
            note="n/a: the method can only answer with training frames."))

    # Where every method stopped, and what it cost (one budget).
    rows = [[r.regime, r.method, _fit(r.fit), fmt(r.fit.best_val_score), _params(r.fit.n_parameters)] for r in table.rows]
    parts.append(markdown_table(
        ["Regime", "Method", "fit (stop reason, steps, CPU s)", "best validation cosine", "params"], rows,
        title=f"Fits under one budget [{mode}]",
        note="Validation cosine: mean per-patch cosine of the predicted patch tensors on the shared validation "
             "windows (closed-form methods: after their one fit). CPU seconds: process time of fit (all threads)."))

    flags = [f"{name}: {note}" for name, info in table.regimes.items() for note in info.notes]
    if flags:
        parts.append("Notes: " + " ".join(flags))
    stand = stand_in_note(ctx.get("stand_ins", {}))
    if stand:
        parts.append(stand)
    return "\n\n".join(parts)


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 10_000 else f"{n / 1e3:.1f}k"


def _fit(fit) -> str:
    if fit.stop_reason in ("closed_form", "checkpoint"):
        return f"{fit.stop_reason.replace('_', ' ')}, {fit.cpu_seconds:.0f} CPU s"
    return f"{fit.stop_reason.replace('_', ' ')} at {fit.steps} steps (best {fit.best_step}), {fit.cpu_seconds:.0f} CPU s"


def render_evaluation(summary: dict, *, paper_regime: str | None = None) -> str:
    """The ``evaluate`` summary as Markdown: sentence scores, tests, embedding metrics, controls."""
    scores = summary["scores"]
    paper_a1 = paper.table("A1")
    regime = (paper_regime or "").removesuffix("_paper")
    ref = {"matched": paper_a1.get("Neurrator (ours)", {}).get(regime)}
    rows = [[name, fmt(s["mean"]), fmt(s["std"]), f"[{fmt(s['ci_low'])}, {fmt(s['ci_high'])}]"] for name, s in scores.items()]
    parts = [markdown_table(
        ["SBERT score", "mean", "std", "95% CI (block bootstrap)"], rows,
        title=f"Sentence scores: {summary['n_windows']} windows, {summary['n_frames']} frames, "
              f"{summary['n_blocks']} blocks ({summary['blocks']})",
        note=(f"Copy rate (narration identical to a reference of the scored frame): {summary.get('copy_rate', 0):.1%}. "
              f"Unique sentences: {summary.get('unique_sentence_fraction', float('nan')):.1%}. Released-script compatible: "
              + ", ".join(f"{k} {fmt(v)}" for k, v in summary.get("released", {}).items())
              + (f" (paper A1, {regime}, its protocol: {fmt(ref['matched'].value)})" if ref["matched"] else "") + "."),
    )]
    test_rows = [[name.replace("_", " "), fmt(t["mean_difference"]), f"{t['n_blocks']}", fmt(t["p_value"], "p"),
                  fmt(t["p_holm"], "p"), f"{t['rank_biserial']:+.2f}"] for name, t in summary["tests"].items()]
    parts.append(markdown_table(["Wilcoxon on block means", "mean diff", "blocks", "p", "p (Holm)", "rank-biserial"],
                                test_rows))
    e = {k: Metric.from_dict(v) for k, v in summary["embedding"].items()}
    a2 = paper.table("A2").get("Neurrator (ours)", {})
    emb_rows = [
        ["linear CKA (full patches)", cell(e["cka"], ci=False), fmt(e["cka"].chance), fmt(a2.get("cka").value)],
        ["linear CKA (pooled)", cell(e["cka_pooled"], ci=False), fmt(e["cka_pooled"].chance), "—"],
        ["shot oracle CKA (full / pooled)", f"{fmt(e['shot_oracle_cka'].value)} / {fmt(e['shot_oracle_cka_pooled'].value)}",
         "—", "—"],
        ["kNN purity", cell(e["knn_purity"], ci=False), fmt(e["knn_purity"].chance), fmt(a2.get("knn_purity").value)],
        ["R@1", cell(e["r1"], "fraction"), fmt(e["r1"].chance, "fraction"), "—"],
        ["R@10", cell(e["r10"], "fraction"), fmt(e["r10"].chance, "fraction"), fmt(a2.get("r10").value, "fraction")],
        ["median rank", fmt(e["median_rank"].value, "rank"), fmt(e["median_rank"].chance, "rank"),
         fmt(a2.get("median_rank").value, "rank")],
        ["±1 s", cell(e["within_1s"], "fraction"), fmt(e["within_1s"].chance, "fraction"), "—"],
        ["within-shot R@1", cell(e["within_shot_r1"], "fraction"), fmt(e["within_shot_r1"].chance, "fraction"), "—"],
        ["R@10 (pooled readout)", cell(e["r10_pooled"], "fraction"), fmt(e["r10_pooled"].chance, "fraction"), "—"],
    ]
    parts.append(markdown_table(
        ["Embedding metric", "value [95% CI]", "chance", "paper A2 (Neurrator paper's protocol)"], emb_rows,
        title="Embedding level: centred full-patch cosine, every stimulus frame a candidate",
        note="Chance: computed (candidate sets; CKA and kNN purity: 95th percentile of permuted pairings)."))
    controls = {k: v for k, v in summary.get("controls", {}).items() if k != "skipped"}
    if controls:
        rows = [[name, fmt(c["matched_mean"]), f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]", fmt(c["real_matched_mean"]),
                 fmt(c["p_value"], "p"), fmt(c["r10"], "pct"),
                 "—" if c["unique_sentence_fraction"] is None else f"{c['unique_sentence_fraction']:.0%}"]
                for name, c in controls.items()]
        skipped = summary["controls"].get("skipped")
        parts.append(markdown_table(
            ["Control", "SBERT matched", "95% CI", "real (same windows, same narrator)", "p (real vs control, blocks)",
             "R@10", "unique"], rows, title="Controls",
            note=("Skipped: " + "; ".join(skipped)) if skipped else None))
    note = stand_in_note(summary.get("stand_ins", {}))
    if note:
        parts.append(note)
    return "\n\n".join(parts)
