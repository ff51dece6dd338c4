"""``neurrator sweep``: compute the cells of a grid file as Ray tasks and gather one table.

Reads ``sweep.grid`` (YAML, see :mod:`neurrator.sweep.grid`), runs every cell not yet done
through :func:`neurrator.sweep.engine.run_sweep` (a local Ray instance with this machine's
cores, or the cluster at ``sweep.address``), and writes ``sweep/<name>/results.parquet`` with
one row per finished cell. Rerunning computes only the cells still missing. If cells failed, the
table of the finished ones is still written and the stage ends with an error naming them.
"""

from __future__ import annotations

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, NeurratorError
from neurrator.core.io import atomic_write_text
from neurrator.rundir import RunDir
from neurrator.stages import StageResult
from neurrator.sweep.engine import RESULTS_FILE, gather, run_sweep
from neurrator.sweep.grid import load_grid


def run(run: RunDir, config: RunConfig) -> StageResult:
    sc = config.sweep
    if sc.grid is None:
        raise InputError(None, "no grid file: pass --grid grid.yaml (or set sweep.grid)")
    grid = load_grid(sc.grid)
    cells = grid.cells()
    folder = run.stage_dir("sweep") / grid.name
    atomic_write_text(folder / "grid.yaml", sc.grid.read_text())
    report = run_sweep(
        cells, folder, run_root=run.root, executor=sc.executor, address=sc.address, num_cpus=sc.num_cpus,
        cpus_per_cell=grid.cpus_per_cell, max_retries=sc.max_retries, progress=sc.progress,
    )
    table = gather(folder, cells)
    where = f"sweep/{grid.name}/{RESULTS_FILE}"
    run.update_manifest(sweeps={grid.name: {"cells": len(cells), "done": len(table), "failed": len(report.failed),
                                            "executor": report.executor, "cluster": report.cluster}})
    if report.failed:
        first_id, first_error = next(iter(report.failed.items()))
        raise NeurratorError(
            f"{len(report.failed)} of {len(cells)} sweep cells failed (first: {first_id}: {first_error}); "
            f"the {len(table)} finished cells are in {run.root / where}; rerun to retry the rest")
    cpus = f", {report.cluster.get('cpus', 0):g} CPUs" if report.cluster else ""
    summary = (f"sweep {grid.name!r} ({grid.cell} cells): {len(cells)} cells, {report.skipped} already done, "
               f"{report.done} computed in {report.seconds:.1f} s ({report.executor}{cpus}) → {where}")
    return StageResult(summary=summary, outputs=[where, f"sweep/{grid.name}/cells/"])
