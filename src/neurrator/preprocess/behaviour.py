"""Behaviour on the ``(repeat, frame)`` grid of a dataset: the targets of behaviour decoders.

The target of sample ``(repeat, frame)`` is the behaviour averaged over the very window a
decoder sees for it: the series is interpolated at the centre of each of the window's bins
(20 bins of 1/120 s, centred on the frame's bins, as in :meth:`NeuralDataset.window_start`)
and averaged, ignoring NaN samples (blinks). Bin times follow the session's own presentation
start times, so each session of a pseudo-mouse gets its own behaviour.

>>> behaviour = read_behaviour("session.nwb", ("natural_movie_one",))          # doctest: +SKIP
>>> speed = behaviour_targets(behaviour, dataset, "running_speed")              # doctest: +SKIP
>>> speed.values.shape == (dataset.n_repeats, dataset.n_frames)                 # doctest: +SKIP
True
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from neurrator.core.errors import InputError
from neurrator.data.types import Behaviour
from neurrator.preprocess.binning import presentation_grid
from neurrator.preprocess.types import NeuralDataset

#: Behaviours a decoder can be asked for, with the unit they are reported in.
BEHAVIOURS = {"running_speed": "cm/s", "pupil_area": "a.u."}


@dataclass(frozen=True)
class BehaviourTargets:
    """One behaviour on a dataset's sample grid.

    Attributes
    ----------
    name : ``"running_speed"`` or ``"pupil_area"``.
    unit : ``"cm/s"`` or the file's pupil unit.
    values : (n_repeats, n_frames) float64, the window-averaged behaviour; NaN where the
        series has no sample (outside its time range, or blinks only).
    session_id : the session it was recorded in.
    source : where in the file it was read from (e.g. ``processing/running/running_speed``).
    """

    name: str
    unit: str
    values: np.ndarray
    session_id: str
    source: str = ""

    def batch(self, pairs: np.ndarray) -> np.ndarray:
        """Targets of ``(repeat, frame)`` pairs (n, 2): (n,) float64."""
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return self.values[pairs[:, 0], pairs[:, 1]]

    def valid(self, pairs: np.ndarray) -> np.ndarray:
        """(n,) bool: pairs whose target is finite."""
        return np.isfinite(self.batch(pairs))

    def fingerprint(self) -> str:
        return f"{self.name}:{self.session_id}:{self.values.shape}"


def behaviour_targets(behaviour: Behaviour, dataset: NeuralDataset, name: str) -> BehaviourTargets:
    """Window-averaged ``name`` for every ``(repeat, frame)`` sample of ``dataset``.

    Raises :class:`InputError` naming the session file when the behaviour is not recorded,
    the stimulus was not shown, or the session has fewer complete repeats than the dataset.
    """
    if name not in BEHAVIOURS:
        raise InputError(None, f"unknown behaviour {name!r}; choose one of {', '.join(BEHAVIOURS)}")
    series = behaviour.running_speed if name == "running_speed" else behaviour.pupil_area
    if series is None:
        what = "running speed" if name == "running_speed" else "eye tracking (pupil area)"
        raise InputError(behaviour.source, f"session {behaviour.session_id} has no {what}; "
                                           "a behaviour decoder cannot be trained on it")
    times, values = (series.times, series.speed) if name == "running_speed" else (series.times, series.area)
    table = behaviour.presentations.get(dataset.stimulus)
    if table is None or table.empty:
        raise InputError(behaviour.source, f"session {behaviour.session_id} has no {dataset.stimulus} presentations")
    starts = presentation_grid(table, dataset.n_frames)
    if len(starts) < dataset.n_repeats:
        raise InputError(behaviour.source, f"session {behaviour.session_id} has {len(starts)} complete repeats of "
                                           f"{dataset.stimulus}, the dataset {dataset.n_repeats}")
    starts = starts[: dataset.n_repeats]
    # Offset (in bins, from the frame's first bin) of the window's bins; see NeuralDataset.window_start.
    first = dataset.bins_per_frame // 2 - dataset.window // 2
    offsets = (first + np.arange(dataset.window) + 0.5) / dataset.bin_rate
    order = np.argsort(times, kind="stable")
    at = np.interp(starts[..., None] + offsets, times[order], values[order], left=np.nan, right=np.nan)
    with warnings.catch_warnings():  # an all-NaN window is NaN on purpose
        warnings.simplefilter("ignore", category=RuntimeWarning)
        target = np.nanmean(at, axis=-1)
    unit = BEHAVIOURS[name]
    return BehaviourTargets(name, unit, target.astype(np.float64), behaviour.session_id, getattr(series, "source", ""))
