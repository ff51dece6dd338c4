"""Sweep grids: a YAML file naming a cell kind, fixed parameters and axes → a list of cells.

.. code-block:: yaml

    name: baselines          # results go to <run>/sweep/<name>/
    cell: benchmark          # a kind registered in neurrator.sweep.cells.SWEEP_CELLS
    params:                  # the same for every cell
      quick: true
    axes:                    # every combination of these values is one cell
      method: [ridge, mlp]
      regime: [repeats, sparse_random]
      subset: [all, "group:V1"]
      seed: [0, 1]

The usual axes are ``method``, ``regime``, ``subset``, ``draw``, ``seed`` and ``session``; a
cell kind says which it reads. A cell's id is a hash of its kind, parameters and axis values, so
editing the grid keeps the results of cells that did not change.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from neurrator.core.errors import InputError


class SweepGrid(BaseModel):
    """A validated grid file."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("sweep", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    cell: str
    params: dict[str, Any] = {}
    axes: dict[str, list[Any]] = {}
    #: CPUs one cell reserves in Ray (the cells set their own thread count to match).
    cpus_per_cell: float = Field(1.0, gt=0)

    @field_validator("axes")
    @classmethod
    def _non_empty(cls, axes: dict[str, list[Any]]) -> dict[str, list[Any]]:
        empty = [k for k, v in axes.items() if not v]
        if empty:
            raise ValueError(f"axes with no values: {', '.join(empty)}")
        return axes

    def cells(self) -> list[Cell]:
        """Every combination of the axes' values, in the order the file lists them."""
        names = list(self.axes)
        return [Cell(self.cell, dict(zip(names, values, strict=True)), self.params)
                for values in itertools.product(*(self.axes[n] for n in names))]


@dataclass(frozen=True)
class Cell:
    """One unit of work: a cell kind, its axis values and the grid's fixed parameters."""

    kind: str
    axes: dict[str, Any]
    params: dict[str, Any]

    @property
    def cell_id(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of kind, axes and params."""
        blob = json.dumps({"kind": self.kind, "axes": self.axes, "params": self.params}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def get(self, axis: str, default: Any = None) -> Any:
        """An axis value, else a fixed parameter of that name, else ``default``."""
        return self.axes.get(axis, self.params.get(axis, default))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "axes": self.axes, "params": self.params}

    @classmethod
    def from_dict(cls, d: dict) -> Cell:
        return cls(d["kind"], dict(d["axes"]), dict(d["params"]))


def load_grid(path: str | Path) -> SweepGrid:
    """Read and validate a grid file; :class:`InputError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "grid file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(path, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError(path, "a grid file is a mapping with 'cell', 'params' and 'axes'")
    try:
        return SweepGrid.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(path, f"invalid grid {'.'.join(map(str, err['loc'])) or 'file'}: {err['msg']}") from None
