"""Read Allen Visual Coding – Neuropixels session NWB files (brain_observatory_1.1) lazily.

The file is opened with h5py and only the pieces needed are read: the units table's metric
columns, the electrodes table, the spike times of the units that pass QC (slice by slice), the
requested stimulus tables, running speed, pupil area, optotagging and metadata. ``waveform_mean``
(units × 384 channels × 82 samples, often larger than everything else) is never read unless
:func:`read_waveform_mean` is called.

Layout (see FACTS.md §2): ``/units`` (``spike_times`` + ``spike_times_index`` cumulative ends,
``peak_channel_id`` and QC metrics), ``/general/extracellular_ephys/electrodes`` (``location``,
``probe_vertical_position``, ``valid_data``, ``group_name``/``probe_id``),
``/intervals/<stimulus>_presentations`` (no repeat column: derived here),
``/processing/optotagging/optogenetic_stimulation``, ``/general/subject/genotype`` and
``/general/stimulus`` (the session type).

Behaviour (:func:`read_behaviour` reads it without touching spikes):

- running speed from the first of :data:`RUNNING_SOURCES` present. The BO 1.1 release writes
  ``/processing/running/running_speed`` with the interval *start* times as timestamps and the
  end times in ``running_speed_end_times`` (AllenSDK's ``get_running_speed``); each sample is
  then placed at its interval's midpoint. Some AllenSDK writers put a ``running_speed`` (or
  ``speed``) TimeSeries into ``/acquisition`` instead, possibly inside a
  ``BehavioralTimeSeries`` container; that is read too. The raw wheel signals in
  ``/acquisition`` (``raw_running_wheel_rotation``, ``running_wheel_*_voltage``) are not speed
  and are not converted.
- pupil area from the first of :data:`PUPIL_SOURCES` present: the gaze-mapping module's
  ``pupil_area`` (filtered, else raw), the ``EyeTracking/pupil_tracking`` ellipse series of newer
  files, or the ``pupil_ellipse_fits`` table, whose width/height are half-axes; there the area is
  AllenSDK's circular estimate π·max(width, height)².
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.data.config import UnitFilterConfig
from neurrator.data.optotag import OptotagRule, light_responses
from neurrator.data.types import (
    CRE_TO_CELL_TYPE,
    MOVIE_STIMULI,
    SCENE_STIMULI,
    Behaviour,
    PupilArea,
    RunningSpeed,
    Session,
    SpikeTrains,
)

#: Units columns read by default (when present); everything else, notably waveforms, is skipped.
UNIT_COLUMNS = (
    "cluster_id", "peak_channel_id", "quality", "snr", "isi_violations", "amplitude_cutoff", "presence_ratio",
    "firing_rate", "amplitude", "d_prime", "isolation_distance", "l_ratio", "nn_hit_rate", "nn_miss_rate",
    "silhouette_score", "max_drift", "cumulative_drift", "waveform_duration", "waveform_halfwidth", "PT_ratio",
    "repolarization_slope", "recovery_slope", "spread", "velocity_above", "velocity_below", "local_index",
)
ELECTRODES = "general/extracellular_ephys/electrodes"
OPTOTAGGING = "processing/optotagging/optogenetic_stimulation"
#: TimeSeries that may hold running speed (cm/s), in order of preference; ``acquisition/*``
#: entries are also looked for one level down (inside a ``BehavioralTimeSeries`` container).
RUNNING_SOURCES = (
    "processing/running/running_speed",
    "acquisition/running_speed",
    "acquisition/speed",
    "processing/running/speed",
)
#: Where pupil area may live, in order of preference.
PUPIL_SOURCES = (
    "processing/filtered_gaze_mapping/pupil_area",
    "acquisition/EyeTracking/pupil_tracking",
    "processing/raw_gaze_mapping/pupil_area",
    "processing/eye_tracking/pupil_ellipse_fits",
)
ALL_STIMULI = MOVIE_STIMULI + SCENE_STIMULI
DEFAULT_UNIT_FILTER = UnitFilterConfig()
DEFAULT_OPTOTAG_RULE = OptotagRule()


@dataclass(frozen=True)
class SessionInfo:
    """Metadata of a session file, readable without touching spikes."""

    session_id: str
    genotype: str
    session_type: str
    n_units: int
    stimuli: tuple[str, ...]


def read_session(
    path: str | Path,
    *,
    stimuli: tuple[str, ...] = ("natural_movie_one",),
    unit_filter: UnitFilterConfig | None = DEFAULT_UNIT_FILTER,
    optotag_rule: OptotagRule = DEFAULT_OPTOTAG_RULE,
) -> Session:
    """Read one session NWB into a :class:`Session` of the units passing QC.

    Parameters
    ----------
    path : the ``.nwb`` file.
    stimuli : stimuli that must be present; the other natural stimuli are read if present.
    unit_filter : QC thresholds (AllenSDK's defaults); ``None`` keeps every unit.
    optotag_rule : light-response rule used to tag units of a Cre line (see
        :mod:`neurrator.data.optotag`).

    Returns
    -------
    Session with ``units`` (area, probe, depth, cell_type, QC metrics, light-response stats),
    ``spikes`` and ``presentations`` (with a derived 0-based ``repeat``).

    Raises
    ------
    InputError naming the file for: missing file, not HDF5, truncated or damaged file, no units
    table, a missing stimulus table, no unit passing QC, NaN / negative / unsorted spike times.
    """
    path = Path(path)
    with _open(path) as f:
        info = _info(f, path)
        units = _units_table(f, path)
        n_total = len(units)
        if unit_filter is not None:
            units = units[_passes_qc(units, unit_filter)]
        if units.empty:
            raise InputError(path, f"no unit passes QC ({n_total} units before filtering; thresholds: {_describe(unit_filter)})")
        spikes = _spike_times(f, path, units["_row"].to_numpy(), units.index.to_numpy())
        presentations = {}
        for name in ALL_STIMULI:
            key = f"intervals/{name}_presentations"
            if key in f:
                presentations[name] = _presentations(f[key], path, name)
            elif name in stimuli:
                raise InputError(path, f"no stimulus table '{key}' (stimuli present: {', '.join(info.stimuli) or 'none'})")
        running, pupil = _running(f, path), _pupil(f, path)
        opto = _table(f[OPTOTAGGING], path) if OPTOTAGGING in f else None
    units = units.drop(columns="_row")
    cell_type = next((ct for cre, ct in CRE_TO_CELL_TYPE.items() if info.genotype.startswith(cre)), None)
    units["cell_type"] = pd.Series([None] * len(units), index=units.index, dtype=object)
    if opto is not None and len(opto):
        light = light_responses(spikes, opto, optotag_rule)
        units = units.join(light.add_prefix("light_"))
        if cell_type is not None:
            units.loc[light["tagged"].to_numpy(), "cell_type"] = cell_type
    return Session(
        session_id=info.session_id,
        genotype=info.genotype,
        session_type=info.session_type,
        units=units,
        spikes=spikes,
        presentations=presentations,
        running_speed=running,
        source=path,
        pupil_area=pupil,
    )


def read_behaviour(path: str | Path, stimuli: tuple[str, ...] = ALL_STIMULI) -> Behaviour:
    """Running speed, pupil area and the presentation tables of ``stimuli`` (those present),
    without reading units or spikes.

    Raises :class:`InputError` naming the file if it is unreadable or a behaviour series is
    malformed (timestamps and samples of different lengths). A missing series is ``None``.
    """
    path = Path(path)
    with _open(path) as f:
        info = _info(f, path)
        presentations = {
            name: _presentations(f[f"intervals/{name}_presentations"], path, name)
            for name in stimuli if f"intervals/{name}_presentations" in f
        }
        return Behaviour(info.session_id, _running(f, path), _pupil(f, path), presentations, path)


def read_info(path: str | Path) -> SessionInfo:
    """Session id, genotype, session type, unit count and stimuli, without reading spikes."""
    path = Path(path)
    with _open(path) as f:
        return _info(f, path)


def read_waveform_mean(path: str | Path, unit_ids: np.ndarray) -> np.ndarray:
    """Mean waveforms of ``unit_ids``: (n_units, ...) float32, read only on request."""
    path = Path(path)
    with _open(path) as f:
        if "units/waveform_mean" not in f:
            raise InputError(path, "no waveform_mean in the units table")
        ids = f["units/id"][()]
        rows = pd.Index(ids).get_indexer(np.asarray(unit_ids))
        if (rows < 0).any():
            raise InputError(path, f"unit ids not in the file: {np.asarray(unit_ids)[rows < 0][:5].tolist()}")
        order = np.argsort(rows)
        data = f["units/waveform_mean"][np.sort(rows)]
        out = np.empty_like(data)
        out[order] = data
        return out.astype(np.float32)


def derive_repeats(presentations: pd.DataFrame) -> np.ndarray:
    """0-based repeat of each presentation (the Allen tables have no repeat column).

    Movies: a new repeat starts in time order whenever the frame does not increase (a reset to
    frame 0) or the stimulus block changes. Scenes: the repeat of a presentation is how many
    times its image (or the blank, −1) was shown before.
    """
    order = np.argsort(presentations["start_time"].to_numpy(), kind="stable")
    p = presentations.iloc[order]
    frame = p["frame"].to_numpy(dtype=float)
    name = str(p["stimulus_name"].iloc[0]) if "stimulus_name" in p and len(p) else ""
    if name in SCENE_STIMULI:
        repeat = pd.Series(frame).groupby(frame).cumcount().to_numpy()
    else:
        block = p["stimulus_block"].to_numpy(dtype=float) if "stimulus_block" in p else np.zeros(len(p))
        new = np.r_[True, (frame[1:] <= frame[:-1]) | (block[1:] != block[:-1])]
        repeat = np.cumsum(new) - 1
    out = np.empty(len(p), dtype=np.int64)
    out[order] = repeat
    return out


# ---- pieces ---------------------------------------------------------------------------------
class _open:
    """``h5py.File`` opened read-only, with file problems turned into :class:`InputError`."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self) -> h5py.File:
        path = self.path
        if not path.exists():
            raise InputError(path, "file not found")
        if not path.is_file():
            raise InputError(path, "not a file")
        try:
            if not h5py.is_hdf5(path):
                raise InputError(path, "not an HDF5/NWB file")
            self.file = h5py.File(path, "r")
        except InputError:
            raise
        except OSError as exc:
            raise InputError(path, f"truncated or damaged HDF5 file ({exc})") from None
        return self.file

    def __exit__(self, exc_type, exc, tb) -> None:
        self.file.close()
        if isinstance(exc, (OSError, KeyError, RuntimeError)) and not isinstance(exc, InputError):
            raise InputError(self.path, f"truncated or damaged HDF5 file ({exc})") from exc


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return _text(value.ravel()[0]) if value.size else ""
    return str(value)


def _scalar(f: h5py.File, key: str, default: str = "") -> str:
    return _text(f[key][()]) if key in f else default


def _info(f: h5py.File, path: Path) -> SessionInfo:
    session_id = _scalar(f, "general/session_id") or _text(f.attrs.get("identifier", "")) or _scalar(f, "identifier") or path.stem
    stimuli = tuple(n for n in ALL_STIMULI if f"intervals/{n}_presentations" in f)
    n_units = int(f["units/id"].shape[0]) if "units/id" in f else 0
    return SessionInfo(
        session_id=session_id,
        genotype=_scalar(f, "general/subject/genotype", "wt/wt"),
        session_type=_scalar(f, "general/stimulus", "unknown"),
        n_units=n_units,
        stimuli=stimuli,
    )


def _column(ds: h5py.Dataset) -> np.ndarray:
    if h5py.check_string_dtype(ds.dtype) is not None:
        return ds.asstr()[()]
    return ds[()]


def _table(group: h5py.Group, path: Path, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """A flat NWB DynamicTable as a DataFrame (ragged and multi-dimensional columns skipped)."""
    if "id" not in group:
        raise InputError(path, f"table '{group.name}' has no id column")
    names = columns if columns is not None else tuple(_text(c) for c in group.attrs.get("colnames", ()))
    data = {}
    for name in names:
        if name not in group or f"{name}_index" in group:
            continue
        ds = group[name]
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 1 or ds.dtype.kind == "O" and h5py.check_string_dtype(ds.dtype) is None:
            continue
        data[name] = _column(ds)
    return pd.DataFrame(data, index=pd.Index(group["id"][()], name="id"))


def _units_table(f: h5py.File, path: Path) -> pd.DataFrame:
    if "units" not in f or "units/id" not in f:
        raise InputError(path, "no units table (/units)")
    for key in ("units/spike_times", "units/spike_times_index"):
        if key not in f:
            raise InputError(path, f"units table has no '{key.split('/')[1]}'")
    units = _table(f["units"], path, UNIT_COLUMNS)
    units["_row"] = np.arange(len(units))
    units.index.name = "unit_id"
    units.index = units.index.astype(np.int64)
    if "peak_channel_id" not in units:
        raise InputError(path, "units table has no peak_channel_id: cannot find brain areas")
    if ELECTRODES not in f:
        raise InputError(path, f"no electrodes table (/{ELECTRODES})")
    el = _table(f[ELECTRODES], path, ("location", "probe_id", "group_name", "probe_vertical_position", "valid_data"))
    where = el.reindex(units["peak_channel_id"].to_numpy())
    location = where["location"].astype(object).to_numpy() if "location" in where else np.full(len(units), None)
    units["area"] = [_area(x) for x in location]
    if "group_name" in where:
        probe = where["group_name"].astype(object).to_numpy()
    elif "probe_id" in where:
        probe = where["probe_id"].astype(object).to_numpy()
    else:
        probe = np.full(len(units), None)
    units["probe"] = [None if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in probe]
    units["depth"] = where["probe_vertical_position"].to_numpy(dtype=float) if "probe_vertical_position" in where else np.nan
    units["valid_data"] = where["valid_data"].fillna(False).to_numpy(dtype=bool) if "valid_data" in where else True
    units["quality"] = units["quality"].astype(object) if "quality" in units else "good"
    return units


def _area(location) -> str | None:
    """Allen's ecephys_structure_acronym: sub-region stripped ('LGd-sh' → 'LGd'); 'None'/'' → None."""
    if location is None or (isinstance(location, float) and np.isnan(location)):
        return None
    text = _text(location).strip()
    if text in ("", "None", "none", "nan"):
        return None
    return text.split("-")[0]


def _passes_qc(units: pd.DataFrame, flt: UnitFilterConfig) -> np.ndarray:
    ok = np.ones(len(units), dtype=bool)

    def col(name: str) -> np.ndarray:
        return units[name].to_numpy(dtype=float) if name in units else np.full(len(units), np.nan)

    if flt.amplitude_cutoff_max is not None:
        ok &= col("amplitude_cutoff") <= flt.amplitude_cutoff_max
    if flt.presence_ratio_min is not None:
        ok &= col("presence_ratio") >= flt.presence_ratio_min
    if flt.isi_violations_max is not None:
        ok &= col("isi_violations") <= flt.isi_violations_max
    if flt.quality is not None:
        ok &= units["quality"].astype(str).to_numpy() == flt.quality
    if flt.require_valid_data:
        ok &= units["valid_data"].to_numpy(dtype=bool)
    if flt.require_area:
        ok &= units["area"].notna().to_numpy()
    return ok


def _describe(flt: UnitFilterConfig | None) -> str:
    return "none" if flt is None else ", ".join(f"{k}={v}" for k, v in flt.model_dump().items() if v is not None)


def _spike_times(f: h5py.File, path: Path, rows: np.ndarray, unit_ids: np.ndarray) -> SpikeTrains:
    """Spike times of the units at ``rows`` of the units table, read slice by slice."""
    ends = f["units/spike_times_index"][()].astype(np.int64)
    begins = np.r_[0, ends[:-1]]
    lengths = ends[rows] - begins[rows]
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    times = np.empty(offsets[-1], dtype=np.float64)
    ds = f["units/spike_times"]
    if len(ends) and ends[-1] > ds.shape[0]:
        raise InputError(path, f"spike_times_index points past the end of spike_times ({ends[-1]} > {ds.shape[0]})")
    for i, r in enumerate(rows):
        if lengths[i]:
            ds.read_direct(times, np.s_[begins[r] : ends[r]], np.s_[offsets[i] : offsets[i + 1]])
    _check_spike_times(times, offsets, unit_ids, path)
    return SpikeTrains(times=times, offsets=offsets, unit_ids=unit_ids.astype(np.int64))


def _check_spike_times(times: np.ndarray, offsets: np.ndarray, unit_ids: np.ndarray, path: Path) -> None:
    def first_unit(bad_spike: np.ndarray) -> int:
        return int(unit_ids[np.searchsorted(offsets, np.flatnonzero(bad_spike)[0], side="right") - 1])

    if np.isnan(times).any():
        raise InputError(path, f"NaN spike times (first in unit {first_unit(np.isnan(times))})")
    if (times < 0).any():
        raise InputError(path, f"negative spike times (first in unit {first_unit(times < 0)})")
    decreasing = np.r_[False, times[1:] < times[:-1]]
    decreasing[offsets[1:-1]] = False  # a new unit may start earlier than the last one ended
    if decreasing.any():
        raise InputError(path, f"unsorted spike times (first in unit {first_unit(decreasing)})")


def _presentations(group: h5py.Group, path: Path, name: str) -> pd.DataFrame:
    table = _table(group, path, ("start_time", "stop_time", "stimulus_name", "stimulus_block", "frame"))
    for col in ("start_time", "stop_time", "frame"):
        if col not in table:
            raise InputError(path, f"stimulus table '{group.name}' has no '{col}' column")
    if "stimulus_name" not in table:
        table["stimulus_name"] = name
    table = table.assign(stimulus_name=name)
    out = pd.DataFrame({
        "start_time": table["start_time"].to_numpy(dtype=float),
        "stop_time": table["stop_time"].to_numpy(dtype=float),
        "frame": np.nan_to_num(table["frame"].to_numpy(dtype=float), nan=-1).astype(np.int64),
        "repeat": derive_repeats(table),
    })
    return out.sort_values("start_time", kind="stable").reset_index(drop=True)


def _series_times(f: h5py.File, key: str, n: int, path: Path) -> np.ndarray:
    """Sample times of the TimeSeries at ``key``: its timestamps (the midpoint when given as
    (start, end) pairs or with a ``<name>_end_times`` sibling), else starting_time + k / rate."""
    if f"{key}/timestamps" in f:
        t = f[f"{key}/timestamps"][()].astype(np.float64)
        if t.ndim == 2 and 2 in t.shape and t.size == 2 * n:  # (start, end) pairs
            t = t.reshape(2, n) if t.shape[0] == 2 else t.T
            t = t.mean(axis=0)
        end_key = f"{key}_end_times/timestamps"
        if end_key in f and f[end_key].shape == t.shape:
            t = 0.5 * (t + f[end_key][()].astype(np.float64))
    elif f"{key}/starting_time" in f:
        ts = f[f"{key}/starting_time"]
        t = float(ts[()]) + np.arange(n) / float(ts.attrs["rate"])
    else:
        raise InputError(path, f"'{key}' has neither timestamps nor starting_time")
    if t.shape != (n,):
        raise InputError(path, f"'{key}' has {n} samples but timestamps of shape {t.shape}")
    return t


def _find_series(f: h5py.File, candidates: tuple[str, ...]) -> str | None:
    """The first candidate present; ``acquisition/<name>`` is also matched one container down."""
    for key in candidates:
        if key in f:
            return key
        parent, _, name = key.rpartition("/")
        if parent == "acquisition" and parent in f:
            for child in f[parent].values():
                if isinstance(child, h5py.Group) and name in child:
                    return f"{child.name.lstrip('/')}/{name}"
    return None


def _running(f: h5py.File, path: Path) -> RunningSpeed | None:
    key = _find_series(f, RUNNING_SOURCES)
    if key is None or f"{key}/data" not in f:
        return None
    speed = f[f"{key}/data"][()].astype(np.float64).ravel()
    return RunningSpeed(times=_series_times(f, key, len(speed), path), speed=speed, source=key)


def _pupil(f: h5py.File, path: Path) -> PupilArea | None:
    key = _find_series(f, PUPIL_SOURCES)
    if key is None:
        return None
    group = f[key]
    if "area" in group and "timestamps" in group:  # ellipse series (ndx-ellipse-eye-tracking)
        area = group["area"][()].astype(np.float64).ravel()
    elif "width" in group and "height" in group:  # ellipse-fit table: half-axes
        radius = np.maximum(group["width"][()], group["height"][()]).astype(np.float64)
        area = np.pi * radius**2
    elif "data" in group:
        area = group["data"][()].astype(np.float64).ravel()
    else:
        return None
    return PupilArea(times=_series_times(f, key, len(area), path), area=area, source=key)
