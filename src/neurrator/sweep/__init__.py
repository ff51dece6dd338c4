"""neurrator.sweep: many independent cells (method × regime × unit subset × draw × seed ×
session, or any axes a grid names) fanned out as Ray tasks.

Orchestration above the layers: a cell calls the same layer functions a stage calls, writes its
own result file atomically and returns it; the driver skips cells already done (so a killed
worker or driver loses only unfinished cells), then gathers every result into one Parquet table.

- :mod:`neurrator.sweep.grid`: the grid file (YAML) and its expansion into :class:`Cell` s.
- :mod:`neurrator.sweep.cells`: the registry of cell kinds (``SWEEP_CELLS``) and the cell protocol.
- :mod:`neurrator.sweep.engine`: :func:`run_sweep` (Ray or in-process) and :func:`gather`.
"""

from __future__ import annotations

from neurrator.core.lazy import lazy_exports

_EXPORTS = {
    "Cell": "neurrator.sweep.grid",
    "SweepGrid": "neurrator.sweep.grid",
    "load_grid": "neurrator.sweep.grid",
    "SWEEP_CELLS": "neurrator.sweep.cells",
    "CellInputs": "neurrator.sweep.cells",
    "SweepReport": "neurrator.sweep.engine",
    "gather": "neurrator.sweep.engine",
    "run_sweep": "neurrator.sweep.engine",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = ["SWEEP_CELLS", "Cell", "CellInputs", "SweepGrid", "SweepReport", "gather", "load_grid", "run_sweep"]
