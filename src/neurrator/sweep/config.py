"""Config section of ``neurrator sweep`` (the CLI's ``--grid``, ``--address`` and ``--num-cpus``
set these)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SweepConfig(BaseModel):
    """Where the grid is and how cells are executed."""

    model_config = ConfigDict(extra="forbid")
    #: Grid file (YAML): cell kind, fixed parameters, axes (see :mod:`neurrator.sweep.grid`).
    grid: Path | None = None
    #: ``"ray"``: Ray tasks (default); ``"inline"``: one cell after another in this process.
    executor: Literal["ray", "inline"] = "ray"
    #: Join this Ray cluster (``auto``, ``<head>:6379``, ``ray://<head>:10001``); ``None``
    #: starts a local instance for the sweep and stops it afterwards.
    address: str | None = None
    #: CPUs of the local instance; ``None`` = this machine's cores.
    num_cpus: int | None = Field(None, ge=1)
    #: Ray retries of a task whose worker process died.
    max_retries: int = Field(3, ge=0)
    progress: bool = True
