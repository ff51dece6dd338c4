"""The cell protocol and the registry of cell kinds.

A cell kind is a function ``f(cell: Cell, inputs: CellInputs) -> Mapping[str, value]``:

- it reads what it needs through ``inputs`` (the run directory, loaded once per worker
  process and shared by the cells that worker runs) and calls the same layer functions a stage
  calls;
- it returns a flat mapping of JSON scalars (numbers, strings, booleans, ``None``) that becomes
  one row of the results table; it writes nothing itself (the engine writes its result file);
- it is deterministic given the cell (seeds come from the cell's axes).

Register a kind with ``@SWEEP_CELLS.register("name")`` in a module listed in ``_BUILTIN`` below.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from neurrator.core.registry import Registry
from neurrator.sweep.grid import Cell

CellFn = Callable[[Cell, "CellInputs"], Mapping[str, Any]]

_BUILTIN = ("neurrator.sweep.cells", "neurrator.sweep.layer_cells")
SWEEP_CELLS: Registry[CellFn] = Registry("sweep cell", builtin_modules=_BUILTIN)

#: Per-process cache of loaded inputs: Ray reuses worker processes, so each worker loads a
#: run's dataset and targets once for all the cells it runs.
_CACHE: dict[tuple, Any] = {}


class CellInputs:
    """What a cell may read: the run directory (``None`` for cells that need none) and a
    per-process cache for loaded artefacts."""

    def __init__(self, run_root: str | Path | None):
        self.run_root = None if run_root is None else Path(run_root)

    @property
    def run(self):
        from neurrator.rundir import RunDir

        if self.run_root is None:
            raise ValueError("this cell needs a run directory")
        return RunDir.open(self.run_root)

    def cached(self, key: tuple, load: Callable[[], Any]) -> Any:
        """``load()`` once per worker process and run directory, then the same object."""
        full = (str(self.run_root), *key)
        if full not in _CACHE:
            _CACHE[full] = load()
        return _CACHE[full]


@SWEEP_CELLS.register("spin")
def spin_cell(cell: Cell, inputs: CellInputs) -> dict:
    """A cheap deterministic test cell: ``iterations`` steps of an integer recurrence (pure
    Python, one core), optionally holding ``sleep`` seconds. Used by the tests, the overhead and
    speed-up benchmark (``benchmarks/bench_sweep.py``) and the fault test."""
    n = int(cell.get("iterations", 0))
    x = int(cell.get("seed", 0)) + 1
    for _ in range(n):
        x = (x * 1_103_515_245 + 12_345) % 2_147_483_648
    if cell.get("sleep", 0):
        time.sleep(float(cell.get("sleep")))
    if cell.get("fail", False):
        raise ValueError(f"cell asked to fail (seed {cell.get('seed')})")
    return {"checksum": x, "iterations": n}
