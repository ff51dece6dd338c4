"""Write a :class:`SimulatedSession` as an Allen-layout NWB file with pynwb.

The layout matches what :mod:`neurrator.data.allen` reads from real brain_observatory_1.1
files: the units table with Allen's QC columns and ``peak_channel_id``, the electrodes table
with ``location``/``probe_id``/``probe_vertical_position``/``valid_data``, one
``<stimulus>_presentations`` interval table per stimulus (no repeat column), the
``optotagging`` processing module, running speed, pupil area (``filtered_gaze_mapping``), the
subject's genotype and the session type
in ``stimulus_notes``. Files are written to a temp name and renamed, so a crash leaves none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from hdmf.common import VectorData, VectorIndex
from pynwb import NWBHDF5IO, NWBFile, ProcessingModule, TimeSeries
from pynwb.ecephys import ElectrodesTable
from pynwb.epoch import TimeIntervals
from pynwb.file import Subject
from pynwb.misc import Units

from neurrator.core.io import atomic_path
from neurrator.data.allen import UNIT_COLUMNS
from neurrator.data.simulate import SimulatedSession

_DESCRIPTIONS = {
    "cluster_id": "Kilosort cluster id on its probe",
    "peak_channel_id": "id of the electrode (channel) where the mean waveform is largest",
    "quality": "curation label: good or noise",
    "snr": "signal-to-noise ratio of the mean waveform",
    "isi_violations": "inter-spike-interval violation rate (Hill et al. 2011)",
    "amplitude_cutoff": "estimated fraction of missed spikes",
    "presence_ratio": "fraction of 100 session blocks in which the unit fired",
    "firing_rate": "mean firing rate over the session (Hz)",
    "amplitude": "peak-to-trough amplitude of the mean waveform (uV)",
    "d_prime": "cluster separability (LDA d')",
    "isolation_distance": "Mahalanobis isolation distance",
    "l_ratio": "L-ratio cluster quality",
    "nn_hit_rate": "nearest-neighbour hit rate",
    "nn_miss_rate": "nearest-neighbour miss rate",
    "silhouette_score": "silhouette score of the cluster",
    "max_drift": "maximum drift of the unit (um)",
    "cumulative_drift": "cumulative drift of the unit (um)",
    "waveform_duration": "trough-to-peak duration of the mean waveform (ms)",
    "waveform_halfwidth": "half-width of the mean waveform (ms)",
    "PT_ratio": "peak-to-trough ratio",
    "repolarization_slope": "repolarization slope of the mean waveform",
    "recovery_slope": "recovery slope of the mean waveform",
    "spread": "spatial spread of the waveform along the probe (um)",
    "velocity_above": "propagation velocity above the soma",
    "velocity_below": "propagation velocity below the soma",
    "local_index": "index of the unit on its probe",
}


def write_allen_nwb(sim: SimulatedSession, path: str | Path, *, waveform_mean: bool = False) -> Path:
    """Write ``sim`` to ``path`` (``.nwb``). ``waveform_mean=True`` adds a (units, 82, 384)
    float32 mean-waveform column, as large as in real files (for memory tests)."""
    path = Path(path)
    s = sim.session
    nwb = NWBFile(
        session_description="Simulated Allen Brain Observatory Visual Coding Neuropixels session "
        "(neurrator stand-in; planted receptive-field model, not a recording)",
        identifier=f"neurrator-sim-{s.session_id}",
        session_id=s.session_id,
        session_start_time=datetime(2019, 1, 1, 9, 0, tzinfo=UTC),
        institution="neurrator simulator (layout of the Allen Institute for Brain Science release)",
        stimulus_notes=s.session_type,
        experiment_description="natural movies, natural scenes and optotagging",
        experimenter=["neurrator, simulator"],
        keywords=["simulation", "Neuropixels", "visual coding", "optotagging"],
    )
    genotype = s.genotype
    nwb.subject = Subject(
        subject_id=f"sim-{s.session_id}",
        genotype=genotype,
        species="Mus musculus",
        sex="M",
        age="P100D",
        description="simulated mouse",
        strain="C57BL/6J",
    )
    _electrodes(nwb, sim.electrodes)
    _units(nwb, sim, waveform_mean)
    for name, table in sim.presentations.items():
        nwb.add_time_intervals(_intervals(f"{name}_presentations", f"Presentation times and indices of {name}", table))
    opto = ProcessingModule(name="optotagging", description="optogenetic stimulation data")
    opto.add(_intervals("optogenetic_stimulation", "blue-light pulses and raised cosines on the cortical surface", sim.optotagging))
    nwb.add_processing_module(opto)
    running = ProcessingModule(name="running", description="running speed data")
    rs = s.running_speed
    running.add(TimeSeries(name="running_speed", data=rs.speed.astype(np.float32), starting_time=float(rs.times[0]),
                           rate=float(1 / np.median(np.diff(rs.times))), unit="cm/s",
                           description="running speed of the mouse on the disc"))
    nwb.add_processing_module(running)
    if s.pupil_area is not None:
        gaze = ProcessingModule(name="filtered_gaze_mapping", description="Gaze mapping processing module filtered outputs")
        pa = s.pupil_area
        gaze.add(TimeSeries(name="pupil_area", data=pa.area.astype(np.float32), starting_time=float(pa.times[0]),
                            rate=float(1 / np.median(np.diff(pa.times))), unit="a.u.",
                            description="pupil area (simulated; NaN during blinks)"))
        nwb.add_processing_module(gaze)
    with atomic_path(path) as tmp, NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    return path


def _electrodes(nwb: NWBFile, el: pd.DataFrame) -> None:
    """The electrodes table, built column-wise in one go (row-wise ``add_electrode`` took ~10 s
    for the 2,304 channels of six probes)."""
    groups = {}
    for probe, probe_id in el.groupby("probe")["probe_id"].first().items():
        device = nwb.create_device(name=probe, description="Neuropixels 1.0 probe (simulated)", manufacturer="imec")
        groups[probe] = nwb.create_electrode_group(
            name=probe, description=f"{probe} (probe_id {probe_id})", location="see electrode locations", device=device
        )
    vertical = el["probe_vertical_position"].to_numpy(dtype=np.int64)
    horizontal = el["probe_horizontal_position"].to_numpy(dtype=np.int64)
    columns = {
        "location": ("Location of the electrode (channel).", el["location"].astype(str).to_numpy()),
        "group": ("Reference to the ElectrodeGroup.", [groups[p] for p in el["probe"]]),
        "group_name": ("Name of the ElectrodeGroup.", el["probe"].astype(str).to_numpy()),
        "x": ("x coordinate of the channel location in the brain.", vertical.astype(np.float64)),
        "y": ("y coordinate of the channel location in the brain.", np.zeros(len(el))),
        "z": ("z coordinate of the channel location in the brain.", horizontal.astype(np.float64)),
        "probe_id": ("id of the probe", el["probe_id"].to_numpy(dtype=np.int64)),
        "local_index": ("channel index on the probe", el["local_index"].to_numpy(dtype=np.int64)),
        "probe_vertical_position": ("distance from the probe tip (um)", vertical),
        "probe_horizontal_position": ("horizontal position on the shank (um)", horizontal),
        "valid_data": ("whether the channel carries usable data", el["valid_data"].to_numpy(dtype=bool)),
    }
    nwb.electrodes = ElectrodesTable(
        id=el.index.to_numpy(dtype=np.int64),
        columns=[VectorData(name=name, description=desc, data=data) for name, (desc, data) in columns.items()],
    )


def _units(nwb: NWBFile, sim: SimulatedSession, waveform_mean: bool) -> None:
    s = sim.session
    spike_times = VectorData(name="spike_times", description="times (s) of detected spikes", data=s.spikes.times)
    columns = [
        VectorIndex(name="spike_times_index", data=s.spikes.offsets[1:], target=spike_times),
        spike_times,
    ]
    for col in UNIT_COLUMNS:
        values = s.units[col].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        columns.append(VectorData(name=col, description=_DESCRIPTIONS[col], data=values))
    if waveform_mean:
        rng = np.random.default_rng(0)
        data = rng.normal(0, 5, (s.n_units, 82, 384)).astype(np.float32)
        columns.append(VectorData(name="waveform_mean", description="mean waveform per channel (uV)", data=data))
    nwb.units = Units(
        name="units", description="sorted single units (simulated)", id=s.units.index.to_numpy(), columns=columns,
        waveform_rate=30000.0 if waveform_mean else None, waveform_unit="microvolts", resolution=1 / 30000.0,
    )


def _intervals(name: str, description: str, table: pd.DataFrame) -> TimeIntervals:
    columns = []
    for col in table.columns:
        values = table[col].to_numpy()
        if values.dtype == object:
            values = values.astype(str)
        columns.append(VectorData(name=col, description=col.replace("_", " "), data=values))
    return TimeIntervals(name=name, description=description, columns=columns, id=np.arange(len(table)))
