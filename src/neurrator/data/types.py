"""Core data objects of the data layer.

A :class:`Session` is what the reader (``neurrator.data.allen``) returns for one NWB file and
what the simulator writes. Everything downstream takes these objects, never raw NWB.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

#: Area groups used across the toolkit (subsets, scaling pools, controls).
AREA_GROUPS: dict[str, tuple[str, ...]] = {
    "V1": ("VISp",),
    "higher_visual": ("VISl", "VISal", "VISrl", "VISam", "VISpm"),
    "LGd": ("LGd",),
    "visual": ("VISp", "VISl", "VISal", "VISrl", "VISam", "VISpm", "LGd", "LP"),
    "hippocampus": ("CA1", "CA3", "DG"),
}

#: Cell types that Allen optotagging can identify, keyed by the Cre line in the genotype.
CRE_TO_CELL_TYPE: dict[str, str] = {"Pvalb": "PV", "Sst": "SST", "Vip": "VIP"}

#: Stimuli the reader understands.
MOVIE_STIMULI = ("natural_movie_one", "natural_movie_three")
SCENE_STIMULI = ("natural_scenes",)


@dataclass(frozen=True)
class SpikeTrains:
    """Ragged spike times of many units, stored flat as in NWB.

    Attributes
    ----------
    times : (n_spikes,) float64, seconds; each unit's slice is sorted.
    offsets : (n_units + 1,) int64; unit ``i`` owns ``times[offsets[i]:offsets[i + 1]]``.
    unit_ids : (n_units,) int64, the Allen unit ids in the same order.
    """

    times: np.ndarray
    offsets: np.ndarray
    unit_ids: np.ndarray

    def __post_init__(self) -> None:
        if self.offsets.ndim != 1 or len(self.offsets) != len(self.unit_ids) + 1:
            raise ValueError("offsets must have n_units + 1 entries")

    def __len__(self) -> int:
        return len(self.unit_ids)

    def unit(self, i: int) -> np.ndarray:
        """Spike times (seconds) of the unit at position ``i`` (a view, not a copy)."""
        return self.times[self.offsets[i] : self.offsets[i + 1]]

    def counts(self) -> np.ndarray:
        """(n_units,) number of spikes per unit."""
        return np.diff(self.offsets)

    def select(self, positions: np.ndarray) -> SpikeTrains:
        """A new ``SpikeTrains`` holding the units at ``positions`` (in that order)."""
        positions = np.asarray(positions, dtype=np.int64)
        parts = [self.unit(i) for i in positions]
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
        return SpikeTrains(times=times, offsets=offsets, unit_ids=self.unit_ids[positions])


@dataclass(frozen=True)
class RunningSpeed:
    """Running speed of the animal. ``times`` (n,) seconds; ``speed`` (n,) cm/s.

    ``source`` names where it was read from (an NWB path inside the file, or ``"simulated"``).
    """

    times: np.ndarray
    speed: np.ndarray
    source: str = ""


@dataclass(frozen=True)
class PupilArea:
    """Pupil area from eye tracking. ``times`` (n,) seconds; ``area`` (n,) in the file's unit
    (Allen: the gaze-mapping module's area), NaN where the pupil was not tracked (blinks).
    ``source`` names where it was read from."""

    times: np.ndarray
    area: np.ndarray
    source: str = ""


@dataclass(frozen=True)
class Behaviour:
    """What one session recorded about the animal, plus the presentation times to align it to
    stimulus frames; read without spikes by :func:`neurrator.data.allen.read_behaviour`.

    Attributes
    ----------
    session_id : as in :class:`Session`.
    running_speed, pupil_area : ``None`` when the file does not have them.
    presentations : stimulus name → table as in :attr:`Session.presentations`.
    source : the file it was read from (``None`` if built in memory).
    """

    session_id: str
    running_speed: RunningSpeed | None
    pupil_area: PupilArea | None
    presentations: dict[str, pd.DataFrame]
    source: Path | None = None


@dataclass(frozen=True)
class Session:
    """One recording session.

    Attributes
    ----------
    session_id : Allen ecephys session id (as a string), or the simulator's id.
    genotype : full genotype string, e.g. ``"Pvalb-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt"``.
    session_type : e.g. ``"brain_observatory_1.1"``.
    units : DataFrame indexed by ``unit_id`` (int64), in the same order as ``spikes``.
        Columns at least: ``area`` (str), ``probe`` (str), ``depth`` (float, µm along the probe),
        ``cell_type`` (str or ``None``: ``"PV"``, ``"SST"``, ``"VIP"``), plus the Allen QC metrics
        (``quality``, ``snr``, ``isi_violations``, ``amplitude_cutoff``, ``presence_ratio``,
        ``firing_rate``, ...).
    spikes : spike times of those units.
    presentations : stimulus name → DataFrame with columns ``start_time``, ``stop_time``,
        ``frame`` (int; −1 for a blank), ``repeat`` (int, 0-based), sorted by ``start_time``.
    running_speed : running speed, if recorded.
    source : the file it was read from (``None`` if built in memory).
    is_simulated : True if this session came from :mod:`neurrator.data.simulate`.
    pupil_area : pupil area, if the file has eye tracking.
    """

    session_id: str
    genotype: str
    session_type: str
    units: pd.DataFrame
    spikes: SpikeTrains
    presentations: dict[str, pd.DataFrame]
    running_speed: RunningSpeed | None = None
    source: Path | None = None
    is_simulated: bool = False
    pupil_area: PupilArea | None = None

    def __post_init__(self) -> None:
        if not np.array_equal(self.units.index.to_numpy(), self.spikes.unit_ids):
            raise ValueError("units table and spike trains disagree on unit order")

    @property
    def n_units(self) -> int:
        return len(self.spikes)

    def behaviour(self) -> Behaviour:
        """Running speed, pupil area and presentations of this session."""
        return Behaviour(self.session_id, self.running_speed, self.pupil_area, self.presentations, self.source)

    @property
    def cre_line(self) -> str | None:
        """``"PV"``, ``"SST"``, ``"VIP"`` or ``None`` for wild type, from the genotype string."""
        for cre, cell_type in CRE_TO_CELL_TYPE.items():
            if self.genotype.startswith(cre):
                return cell_type
        return None

    def select_units(self, unit_ids: np.ndarray) -> Session:
        """A session holding only ``unit_ids`` (in that order)."""
        unit_ids = np.asarray(unit_ids, dtype=np.int64)
        positions = self.units.index.get_indexer(unit_ids)
        if (positions < 0).any():
            missing = unit_ids[positions < 0][:5].tolist()
            raise KeyError(f"unit ids not in session {self.session_id}: {missing}")
        return Session(
            session_id=self.session_id,
            genotype=self.genotype,
            session_type=self.session_type,
            units=self.units.iloc[positions],
            spikes=self.spikes.select(positions),
            presentations=self.presentations,
            running_speed=self.running_speed,
            source=self.source,
            is_simulated=self.is_simulated,
            pupil_area=self.pupil_area,
        )


@dataclass(frozen=True)
class Stimulus:
    """The frames of one stimulus and their reference captions.

    Attributes
    ----------
    name : ``"natural_movie_one"``, ``"natural_movie_three"`` or ``"natural_scenes"``.
    frames : (n_frames, height, width) uint8 grayscale. For scenes, one image per index.
    frame_rate : Hz for movies, ``None`` for an image set.
    captions : frame index → reference captions (≥ 1 each). May be empty if none are known.
    shot_of_frame : (n_frames,) int64 shot id per frame for movies built from shots, else ``None``.
    is_stand_in : True for the embedded demo stimulus (not the Allen movie).
    description : free text for reports (where the frames came from).
    """

    name: str
    frames: np.ndarray
    frame_rate: float | None
    captions: dict[int, list[str]] = field(default_factory=dict)
    shot_of_frame: np.ndarray | None = None
    is_stand_in: bool = False
    description: str = ""

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @cached_property
    def content_hash(self) -> str:
        """SHA-256 of the frame pixels (dtype and shape included); keys the patch-target cache."""
        a = np.ascontiguousarray(self.frames)
        h = hashlib.sha256(f"{a.dtype}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
        return h.hexdigest()
