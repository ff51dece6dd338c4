"""Run sweep cells as Ray tasks (or in-process), resumably, and gather their results.

Layout of a sweep folder (``<run>/sweep/<grid name>/``)::

    cells/<cell_id>.json          one finished cell: its cell, result row and timing
    cells/<cell_id>.failed.json   a cell whose function raised (retried on the next run)
    results.parquet               every finished cell of the grid, one row each

Each task writes its own result file atomically (``neurrator.core.io``) before it returns, and
the driver writes the returned record too if the file is not visible to it (a cluster without a
shared file system). A cell counts as done when its result file exists, so a killed worker
(Ray retries the task, ``max_retries``) or a killed driver loses only the cells that were still
running, and running the sweep again computes only the missing ones.

The default executor starts a local Ray instance (``ray.init(address="local")``, dashboard off)
with this machine's cores; ``address`` joins an existing cluster instead (``"auto"``,
``"<head>:6379"`` or ``"ray://<head>:10001"``; the run folder must then be on storage every
node sees, or results come back through the driver). ``executor="inline"`` runs the cells one
after another in this process, with the same files.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_path, atomic_write_json
from neurrator.core.threads import thread_limit
from neurrator.sweep.cells import SWEEP_CELLS, CellInputs
from neurrator.sweep.grid import Cell

CELLS_DIR = "cells"
RESULTS_FILE = "results.parquet"


def result_path(folder: str | Path, cell: Cell) -> Path:
    return Path(folder) / CELLS_DIR / f"{cell.cell_id}.json"


def is_done(folder: str | Path, cell: Cell) -> bool:
    return result_path(folder, cell).is_file()


def execute_cell(cell_dict: dict, run_root: str | None, folder: str, threads: int = 1) -> dict:
    """Run one cell and write its result file atomically; returns the record.

    Runs on a Ray worker (or in-process). A cell that raises is recorded in
    ``<id>.failed.json`` and returned with ``status="failed"`` (not retried by Ray: the same
    inputs would fail again); a crashed worker process is retried by Ray.
    """
    cell = Cell.from_dict(cell_dict)
    started = time.time()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    record: dict[str, Any] = {"cell_id": cell.cell_id, "cell": cell.to_dict()}
    try:
        with thread_limit(max(int(threads), 1)):
            result = dict(SWEEP_CELLS.create(cell.kind, cell=cell, inputs=CellInputs(run_root)))
        record.update(status="done", result=result)
    except Exception as exc:  # noqa: BLE001 - any failure of a cell is recorded, the sweep goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=8))
    record["timing"] = {
        "wall_seconds": round(time.perf_counter() - wall0, 4), "cpu_seconds": round(time.process_time() - cpu0, 4),
        "started": started, "pid": os.getpid(), "node": socket.gethostname(),
    }
    path = result_path(folder, cell)
    if record["status"] == "done":
        atomic_write_json(path, record)
        path.with_suffix(".failed.json").unlink(missing_ok=True)
    else:
        atomic_write_json(path.with_suffix(".failed.json"), record)
    return record


@dataclass
class SweepReport:
    """What one invocation did.

    Attributes
    ----------
    n_cells : cells in the grid; ``skipped`` were already done before this run, ``done`` finished
        in it, ``failed`` maps cell id → error (function raised, or worker lost after retries).
    seconds : wall time of the whole invocation (Ray start-up included).
    executor : ``"ray"`` or ``"inline"``; ``cluster`` : Ray's resources (CPUs) and address.
    """

    folder: Path
    n_cells: int
    skipped: int = 0
    done: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    executor: str = "ray"
    cluster: dict = field(default_factory=dict)


def run_sweep(
    cells: Sequence[Cell], folder: str | Path, *, run_root: str | Path | None = None, executor: str = "ray",
    address: str | None = None, num_cpus: int | None = None, cpus_per_cell: float = 1.0, max_retries: int = 3,
    progress: bool = True,
) -> SweepReport:
    """Compute every cell of ``cells`` not yet done in ``folder``.

    Parameters
    ----------
    cells : the grid's cells (:meth:`SweepGrid.cells`).
    folder : the sweep folder; results go to ``folder/cells/``.
    run_root : the run directory cells read their inputs from (``None`` if they need none).
    executor : ``"ray"`` (default) or ``"inline"`` (this process, one cell at a time).
    address : join this Ray cluster; ``None`` starts a local instance with ``num_cpus`` CPUs
        (default: this machine's cores) and stops it at the end.
    cpus_per_cell : CPUs each task reserves; each cell runs on that many torch/BLAS threads.
    max_retries : Ray retries of a task whose worker process died.
    """
    if executor not in ("ray", "inline"):
        raise InputError(None, f"unknown sweep executor {executor!r}; use 'ray' or 'inline'")
    folder = Path(folder)
    (folder / CELLS_DIR).mkdir(parents=True, exist_ok=True)
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise InputError(None, "the grid lists the same cell twice")
    todo = [c for c in cells if not is_done(folder, c)]
    report = SweepReport(folder, len(cells), skipped=len(cells) - len(todo), executor=executor)
    t0 = time.perf_counter()
    root = None if run_root is None else str(Path(run_root).resolve())
    bar = tqdm(total=len(todo), desc="sweep cells", unit="cell", disable=not progress or not todo)
    threads = max(int(cpus_per_cell), 1)
    if executor == "inline" or not todo:
        for cell in todo:
            _collect(report, folder, execute_cell(cell.to_dict(), root, str(folder), threads))
            bar.update(1)
    else:
        _run_on_ray(report, todo, folder, root, address, num_cpus, cpus_per_cell, threads, max_retries, bar)
    bar.close()
    report.seconds = time.perf_counter() - t0
    return report


def _run_on_ray(report, todo, folder, root, address, num_cpus, cpus_per_cell, threads, max_retries, bar) -> None:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=False)
    try:
        report.cluster = {"address": address or "local", "cpus": ray.cluster_resources().get("CPU", 0.0),
                          "driver_node": platform.node()}
        task = ray.remote(execute_cell).options(num_cpus=cpus_per_cell, max_retries=max_retries,
                                                retry_exceptions=False)
        pending = {task.remote(c.to_dict(), root, str(folder), threads): c for c in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    record = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - worker died after its retries, node lost, ...
                    record = {"cell_id": cell.cell_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                _collect(report, folder, record, cell)
                bar.update(1)
    finally:
        if started_here:
            ray.shutdown()


def _collect(report: SweepReport, folder: Path, record: dict, cell: Cell | None = None) -> None:
    if record.get("status") == "done":
        report.done += 1
        if cell is not None and not is_done(folder, cell):  # the worker's disk is not ours
            atomic_write_json(result_path(folder, cell), record)
    else:
        report.failed[record["cell_id"]] = record.get("error", "unknown error")


def gather(folder: str | Path, cells: Sequence[Cell]) -> pd.DataFrame:
    """One row per finished cell of ``cells`` (axes, result fields, timing) → also written to
    ``folder/results.parquet`` atomically. Cells not finished are left out."""
    import json

    folder = Path(folder)
    rows = []
    for cell in cells:
        path = result_path(folder, cell)
        if not path.is_file():
            continue
        try:
            record = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise InputError(path, f"corrupt cell result: {exc}; delete it to recompute the cell") from None
        row = {"cell_id": cell.cell_id, "kind": cell.kind, **cell.axes}
        for key, value in record.get("result", {}).items():
            row[key if key not in row else f"result.{key}"] = value
        for key, value in record.get("timing", {}).items():
            row[f"timing.{key}"] = value
        rows.append(row)
    table = pd.DataFrame(rows)
    for column in table.columns:  # parquet needs one type per column (axes may mix str and int)
        kinds = {type(v) for v in table[column].dropna()}
        if len(kinds) > 1 and not kinds <= {int, float, bool}:
            table[column] = table[column].map(lambda v: v if v is None else str(v))
    with atomic_path(folder / RESULTS_FILE) as tmp:
        table.to_parquet(tmp, index=False)
    return table
