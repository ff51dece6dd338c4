"""Unit subsets chosen by a short text spec, shared by training, analyses and queries.

Grammar (terms joined by ``+`` are intersected)::

    all                          every unit
    area:VISp                    one brain area (``units.area``); ``area:VISp,VISl`` for several
    group:<name>                 an area group from ``AREA_GROUPS``: V1, higher_visual, LGd,
                                 visual, hippocampus
    cell_type:PV                 optotagged cell type (``units.cell_type``): PV, SST or VIP
    session:<id>                 units of one session (``units.session_id``)
    random:<N>                   N units drawn without replacement (needs ``rng``)
    ids:1,2,3                    explicit unit ids (the index of ``units``)
    local:<probe>:<lo>-<hi>      a local population: one probe, depth in [lo, hi] µm

``random:N`` is applied last, to the units the other terms select, so
``group:visual+random:100`` is 100 random visual units. Asking for more units than exist, or
a spec that selects nothing, raises :class:`InputError`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.data.types import AREA_GROUPS


def subset_mask(units: pd.DataFrame, spec: str, *, rng: np.random.Generator | None = None) -> np.ndarray:
    """Boolean mask over the rows of ``units`` selected by ``spec``.

    Parameters
    ----------
    units : DataFrame indexed by unit_id with columns ``area``, ``probe``, ``depth``,
        ``cell_type`` (and ``session_id`` for ``session:`` terms).
    spec : subset spec, see the module docstring.
    rng : random generator, required by ``random:N`` terms.

    Returns
    -------
    mask : (n_units,) bool.
    """
    terms = [t.strip() for t in spec.split("+") if t.strip()]
    if not terms:
        raise InputError(None, f"subset '{spec}' is empty; use 'all' for every unit")
    mask = np.ones(len(units), dtype=bool)
    random_n: int | None = None
    for term in terms:
        kind, _, arg = term.partition(":")
        if kind == "random":
            random_n = _positive_int(arg, spec)
            continue
        mask &= _term_mask(units, kind, arg, spec)
    if random_n is not None:
        if rng is None:
            raise InputError(None, f"subset '{spec}' uses random:N and needs a random generator (rng=)")
        candidates = np.flatnonzero(mask)
        if random_n > len(candidates):
            raise InputError(None, f"subset '{spec}' asks for {random_n} units but only {len(candidates)} match")
        mask = np.zeros(len(units), dtype=bool)
        mask[rng.choice(candidates, size=random_n, replace=False)] = True
    if not mask.any():
        raise InputError(None, f"subset '{spec}' selects no units")
    return mask


def resolve_unit_mask(units: pd.DataFrame, query, *, rng: np.random.Generator | None = None) -> np.ndarray | None:
    """The (n_units,) bool mask a model query asks for, or ``None`` for every unit.

    ``query`` is ``None`` (all units), a subset spec (``"area:VISp"``, ``"random:30"``, ...), a
    boolean mask over the rows of ``units``, or a list of unit ids. Raises :class:`InputError`
    for a mask of the wrong shape, unknown unit ids, or a query that selects no unit.
    """
    if query is None:
        return None
    if isinstance(query, str):
        mask = subset_mask(units, query, rng=rng)
    else:
        arr = np.asarray(query)
        if arr.dtype == bool:
            if arr.shape != (len(units),):
                raise InputError(None, f"unit mask has shape {arr.shape}, expected ({len(units)},)")
            mask = arr
        else:
            mask = np.isin(units.index.to_numpy().astype(str), arr.astype(str))
            if mask.sum() != len(np.unique(arr)):
                raise InputError(None, f"{len(np.unique(arr)) - int(mask.sum())} of the requested unit ids "
                                       "are not in this session")
    if not mask.any():
        raise InputError(None, f"unit subset {query!r} selects no units")
    return np.asarray(mask, dtype=bool)


def _term_mask(units: pd.DataFrame, kind: str, arg: str, spec: str) -> np.ndarray:
    if kind == "all" and not arg:
        return np.ones(len(units), dtype=bool)
    if kind == "area":
        return _column(units, "area", spec).isin(arg.split(",")).to_numpy()
    if kind == "group":
        if arg not in AREA_GROUPS:
            raise InputError(None, f"subset '{spec}': unknown area group {arg!r}; groups are {', '.join(AREA_GROUPS)}")
        return _column(units, "area", spec).isin(AREA_GROUPS[arg]).to_numpy()
    if kind == "cell_type":
        return _column(units, "cell_type", spec).isin(arg.split(",")).to_numpy()
    if kind == "session":
        return _column(units, "session_id", spec).astype(str).isin(arg.split(",")).to_numpy()
    if kind == "ids":
        try:
            ids = [int(x) for x in arg.split(",") if x.strip()]
        except ValueError:
            raise InputError(None, f"subset '{spec}': ids must be integers") from None
        return np.isin(units.index.to_numpy(), ids)
    if kind == "local":
        probe, _, depth_range = arg.partition(":")
        lo, sep, hi = depth_range.partition("-")
        try:
            lo_f, hi_f = float(lo), float(hi)
        except ValueError:
            lo_f = hi_f = float("nan")
        if not probe or not sep or not lo_f <= hi_f:
            raise InputError(None, f"subset '{spec}': expected local:<probe>:<depth_lo>-<depth_hi>")
        depth = _column(units, "depth", spec).to_numpy(dtype=float)
        on_probe = _column(units, "probe", spec).astype(str).to_numpy() == probe
        return on_probe & (depth >= lo_f) & (depth <= hi_f)
    raise InputError(
        None, f"subset '{spec}': unknown term {kind!r}; use all, area:, group:, cell_type:, session:, random:, ids:, local:"
    )


def _column(units: pd.DataFrame, name: str, spec: str) -> pd.Series:
    if name not in units.columns:
        raise InputError(None, f"subset '{spec}' needs a '{name}' column in the units table")
    return units[name]


def _positive_int(arg: str, spec: str) -> int:
    try:
        n = int(arg)
    except ValueError:
        n = 0
    if n <= 0:
        raise InputError(None, f"subset '{spec}': random:N needs a positive integer N")
    return n
