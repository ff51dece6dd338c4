"""Issue 15's goal, read off benchmark tables: is the best Neurrator variant ahead of every baseline?

Reads ``benchmark/tables.json`` (written by ``neurrator benchmark``) of one or more runs. Per
regime the Neurrator variant is chosen by **validation score** (``FitReport.best_val_score``,
:func:`neurrator.encoder.bench_methods.best_variant`), never by a test score. Then:

- **repeats split** (the table's active split): the chosen variant's R@10, ±1 s and within-shot
  R@1 against every baseline row (Ridge, MLP, PCA + kNN, CEBRA at each dimension, LM decoders,
  DINA listed beside them), with their block-bootstrap intervals;
- **regimes that hold frames out**: the chosen variant's zero-shot R@10 against Ridge's and
  against 3 × its computed chance level.

"ahead" means a higher point estimate; "clear" means its interval lies wholly above the other's.
Nothing here is tuned: the tables are read as written.

Usage::

    python benchmarks/bench_encoder_goal.py runs/demo-bench runs/seed1-bench
    python benchmarks/bench_encoder_goal.py --label demo runs/a runs/b   # several tables, one session
"""

from __future__ import annotations

import argparse
from pathlib import Path

from neurrator.encoder.bench_methods import best_variant
from neurrator.evaluate.results import BenchmarkTable, Metric

GOAL_KEYS = (("r10", "R@10"), ("within_1s", "±1 s"), ("within_shot_r1", "within-shot R@1"))


def _is_neurrator(row) -> bool:
    return row.family == "neurrator" or row.family.startswith("neurrator-")


def _fmt(m: Metric | None) -> str:
    if m is None or m.value is None:
        return "n/a"
    ci = f" [{m.ci.low:.3f}, {m.ci.high:.3f}]" if m.ci is not None else ""
    return f"{m.value:.3f}{ci}"


def _compare(a: Metric, b: Metric) -> str:
    if a is None or b is None or a.value is None or b.value is None:
        return "n/a"
    if a.value <= b.value:
        return "BEHIND" if a.value < b.value else "level"
    clear = a.ci is not None and b.ci is not None and a.ci.low > b.ci.high
    return "ahead (clear)" if clear else "ahead (intervals overlap)"


def report(tables: list[BenchmarkTable], label: str) -> dict:
    """Print the goal check of one session's tables; return ``{check: bool}``."""
    rows, regimes, active = [], {}, tables[0].active
    for t in tables:
        for name, info in t.regimes.items():
            if name not in regimes:
                regimes[name] = info
                rows += [r for r in t.rows if r.regime == name]
    budgets = {t.budget.label for t in tables}
    print(f"\n## {label}\n\nbudget: {' | '.join(sorted(budgets))}")
    checks: dict[str, bool] = {}
    for regime, info in regimes.items():
        neur = [r for r in rows if r.regime == regime and _is_neurrator(r) and r.iterative]
        best = best_variant(rows, regime)
        if best is None:
            print(f"\n{regime}: no budgeted Neurrator row")
            continue
        print(f"\n### {regime}{' (active split)' if regime == active else ''}: {info.description}")
        print("Neurrator variants by validation score (mean per-patch cosine on the validation windows):")
        for r in sorted(neur, key=lambda r: -r.fit.best_val_score):
            print(f"  {'→' if r is best else ' '} {r.method:58s} val {r.fit.best_val_score:.4f}  "
                  f"({r.fit.steps} steps, {r.fit.stop_reason})")
        others = [r for r in rows if r.regime == regime and not _is_neurrator(r)]
        if regime == active:
            for key, name in GOAL_KEYS:
                ok = True
                print(f"{name}: {best.method} {_fmt(best.metrics.get(key))}")
                for o in others:
                    verdict = _compare(best.metrics.get(key), o.metrics.get(key))
                    ok &= verdict.startswith("ahead")
                    print(f"    vs {o.method:40s} {_fmt(o.metrics.get(key)):26s} {verdict}")
                checks[f"{regime}: {name} ahead of every baseline"] = ok
        if info.holds_out_frames:
            zs = best.metrics.get("zero_shot_r10")
            ridge = next((o for o in others if o.family == "ridge"), None)
            rz = None if ridge is None else ridge.metrics.get("zero_shot_r10")
            print(f"zero-shot R@10: {best.method} {_fmt(zs)} (chance {zs.chance:.3f}, ×{zs.value / zs.chance:.2f})"
                  f"; Ridge {_fmt(rz)}: {_compare(zs, rz)}")
            for o in others:
                if o is not ridge:
                    print(f"    {o.method:40s} {_fmt(o.metrics.get('zero_shot_r10'))}")
            checks[f"{regime}: zero-shot R@10 ahead of Ridge"] = _compare(zs, rz).startswith("ahead")
            checks[f"{regime}: zero-shot R@10 ≥ 3 × chance"] = zs.value >= 3 * zs.chance
    print()
    for k, v in checks.items():
        print(f"  [{'met' if v else 'NOT met'}] {k}")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (or their benchmark/ folders)")
    parser.add_argument("--label", help="treat every table given as one session with this label")
    args = parser.parse_args()
    folders = [p / "benchmark" if (p / "benchmark").is_dir() else p for p in args.runs]
    tables = [BenchmarkTable.load(f) for f in folders]
    if args.label:
        report(tables, args.label)
    else:
        for folder, table in zip(folders, tables, strict=True):
            report([table], str(folder.parent))


if __name__ == "__main__":
    main()
