"""A simulator of Allen Visual Coding – Neuropixels sessions with a planted pixel-level model.

The simulated animal watches the same stimulus frames the decoder is trained against, but its
neurons are linear–nonlinear units on **pixels** (Gabor and difference-of-Gaussians receptive
fields), never on features of a vision model, so decoding the simulated data is not circular.
:mod:`neurrator.data.nwb_write` turns the result into an Allen-layout NWB file.

Realism, and the figure each property is checked against (``tests/test_data_simulate.py``):

==========================  =================================================================
property                    model (literature anchor)
==========================  =================================================================
firing rates                log-normal across units, σ ≈ 0.9 in ln units (Buzsáki & Mizuseki
                            2014, Nat Rev Neurosci: rates are log-normally distributed)
trial variability           gamma-modulated Poisson with a shared slow population gain
                            (Goris et al. 2014, Nat Neurosci): Fano factor of counts > 1,
                            median about 1.2–2 as in mouse visual cortex
latency                     LGd < VISp < LP < higher visual areas (order of the response
                            latency hierarchy of Siegle et al. 2021, Nature, Fig. 2); values
                            are approximate: 35, 45, 50, 52–62 ms
receptive-field size        σ grows LGd < VISp < VISl < VISal/VISrl < VISpm/VISam (RF area
                            increases along the hierarchy, Siegle et al. 2021, ED Fig.; Wang &
                            Burkhalter 2007)
running                     multiplicative gain exp(β · s(v)) graded with speed v through
                            s(v) ∝ v / (v + 5 cm/s), 1 at 25 cm/s (responses grow with speed
                            and saturate, Saleem et al. 2013), ≈1.6× in VISp (Niell & Stryker 2010 report
                            about a doubling); strongest for VIP (Fu et al. 2014), clearly
                            positive for SST (Pakan et al. 2016; Dipoppa et al. 2018)
pupil                       area follows running with a ~1 s lag plus slow arousal noise
                            (Reimer et al. 2014; Vinck et al. 2015); no unit reads the pupil
hippocampus                 CA1/CA3/DG rates follow a slow random process unrelated to the
                            frames (not stimulus-locked), with speed modulation
cell types                  PV: high rates, narrow spikes (< 0.4 ms), untuned, short latency;
                            SST: larger RFs and slower; VIP: weak visual drive, strong running
                            modulation (Pfeffer et al. 2013; Adesnik et al. 2012; Fu et al. 2014)
optotagging                 ChR2-expressing units fire 1–2 spikes 2–6 ms after a light pulse
                            with high reliability; ~15 % of Cre+ units express too weakly to tag
QC metrics                  presence ratio computed from the spikes (some units drift out);
                            amplitude cutoff, ISI violations drawn so that about a quarter of
                            units fail AllenSDK's default filter; about 1 % sit on channels
                            flagged invalid
==========================  =================================================================

Times are compressed compared with a real session: only the natural stimuli, short gray
gaps and the optotagging epoch are played (no gratings, flashes or noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from neurrator.core.errors import InputError
from neurrator.data.allen import derive_repeats
from neurrator.data.types import (
    CRE_TO_CELL_TYPE,
    PupilArea,
    RunningSpeed,
    Session,
    SpikeTrains,
    Stimulus,
)

SESSION_TYPE = "brain_observatory_1.1"
FULL_GENOTYPES = {
    "Pvalb": "Pvalb-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "Sst": "Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "Vip": "Vip-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    "wt": "wt/wt",
}
#: Fixed seed of the stimulus sequence: every simulated mouse sees the same order, as in BO 1.1.
PROTOCOL_SEED = 1_101

#: Cortical target of each probe (the Allen probe → area assignment).
PROBE_CORTEX = {"probeA": "VISam", "probeB": "VISpm", "probeC": "VISp", "probeD": "VISl", "probeE": "VISal", "probeF": "VISrl"}
N_CHANNELS = 384
#: (location as written in the electrodes table, lowest and highest vertical position in µm).
#: Sub-region suffixes (``LGd-sh``, ``DG-mo``) are stripped by the reader, as AllenSDK does.
_PROBE_REGIONS = {
    "probeA": [("LP", 200, 1500), ("DG-mo", 1500, 2100), ("CA1", 2100, 2700)],
    "probeB": [("LP", 200, 1500), ("DG-sg", 1500, 2100), ("CA1", 2100, 2700)],
    "probeC": [("LGd-sh", 200, 900), ("LGd-co", 900, 1500), ("DG-mo", 1500, 2100), ("CA1", 2100, 2700)],
    "probeD": [("LGd-co", 200, 1500), ("CA3", 1500, 2100), ("CA1", 2100, 2700)],
    "probeE": [("LGd-sh", 200, 1500), ("CA3", 1500, 2100), ("CA1", 2100, 2700)],
    "probeF": [("LP", 200, 1500), ("CA3", 1500, 2100), ("CA1", 2100, 2700)],
}
_CORTEX_DEPTH = (2700, 3860)

#: Relative share of units per area (before QC), roughly as in BO 1.1 sessions.
AREA_WEIGHT = {"VISp": 0.16, "VISl": 0.10, "VISal": 0.10, "VISrl": 0.08, "VISam": 0.08, "VISpm": 0.08,
               "LGd": 0.08, "LP": 0.08, "CA1": 0.12, "CA3": 0.06, "DG": 0.06}
#: Mean response latency (s) by area, ordered as in Siegle et al. 2021.
AREA_LATENCY = {"LGd": 0.035, "VISp": 0.045, "LP": 0.050, "VISl": 0.052, "VISrl": 0.055, "VISal": 0.056,
                "VISpm": 0.060, "VISam": 0.062}
#: Receptive-field Gaussian σ (degrees of visual angle) by area.
AREA_RF_SIGMA = {"LGd": 4.0, "VISp": 6.0, "VISl": 7.0, "VISal": 8.0, "VISrl": 8.5, "VISpm": 9.5, "VISam": 10.5, "LP": 13.0}
#: Integration time constant (frames) by area: slower along the hierarchy.
AREA_TAU_FRAMES = {"LGd": 0.5, "VISp": 0.8, "VISl": 1.0, "VISal": 1.1, "VISrl": 1.1, "VISpm": 1.3, "VISam": 1.4, "LP": 1.6}
#: Median firing rate (Hz) of the log-normal per area / cell type.
MEDIAN_RATE = {"excitatory": 3.0, "PV": 12.0, "SST": 6.0, "VIP": 4.0, "LGd": 8.0, "LP": 6.0, "hippocampus": 1.5}
#: Mean log running gain (rate × exp(β · s(speed))) per population; see :func:`running_state`.
RUNNING_BETA = {"excitatory": 0.45, "PV": 0.45, "SST": 0.6, "VIP": 1.0, "LGd": 0.25, "LP": 0.3, "hippocampus": 0.4}
#: Running state s(v) = v⁺ / (v⁺ + RUNNING_HALF_SPEED) · (RUNNING_REF_SPEED + RUNNING_HALF_SPEED) /
#: RUNNING_REF_SPEED: half its asymptote at 5 cm/s, 1 at a typical 25 cm/s.
RUNNING_HALF_SPEED, RUNNING_REF_SPEED = 5.0, 25.0
#: Pupil model: log area = log(PUPIL_BASE) + PUPIL_RUN_GAIN · s(speed 1 s earlier) + AR(1) noise.
PUPIL_BASE, PUPIL_RUN_GAIN, PUPIL_NOISE_SD, PUPIL_TAU_S, PUPIL_RATE_HZ = 1500.0, 0.35, 0.12, 5.0, 30.0
#: Share of cortical units of each interneuron type (ground truth; tagged only in its Cre line).
INTERNEURON_SHARE = {"PV": 0.08, "SST": 0.05, "VIP": 0.04}
HIPPOCAMPUS = ("CA1", "CA3", "DG")
CORTEX = ("VISp", "VISl", "VISal", "VISrl", "VISam", "VISpm")

SCREEN_DEG = (95.0, 120.0)  # elevation × azimuth covered by the stimulus monitor
GRID = (38, 76)  # model pixels (8× coarser than the 304 × 608 movie)
FRAME_S = 1 / 30
SCENE_S = 0.25


@dataclass
class SimulatedSession:
    """Everything the NWB writer needs for one session, plus the planted ground truth.

    Attributes
    ----------
    session : units (Allen QC columns, ``peak_channel_id``, true area), spikes, presentations.
    electrodes : (n_channels,) table with ``location``, ``probe_id``, ``probe``,
        ``probe_vertical_position``, ``probe_horizontal_position``, ``valid_data``.
    presentations : stimulus → Allen-style table (no ``repeat`` column).
    optotagging : Allen ``optogenetic_stimulation`` table.
    truth : JSON-ready planted parameters (per-unit receptive fields, cell types, ...).
    """

    session: Session
    electrodes: pd.DataFrame
    presentations: dict[str, pd.DataFrame]
    optotagging: pd.DataFrame
    truth: dict
    #: The planted model (receptive fields, gains, latencies), for tests; not written to NWB.
    model: _ReceptiveFieldModel | None = None
    #: Planted stimulus drive per stimulus: (n_frames + 1, n_units) z-scores (last row: gray).
    drive: dict[str, np.ndarray] = field(default_factory=dict)


def simulate_session(
    stimuli: dict[str, Stimulus],
    *,
    n_units: int = 850,
    areas: list[str] | None = None,
    genotype: str = "Pvalb",
    seed: int = 0,
    session_index: int = 0,
    movie_repeats: int = 20,
    scene_repeats: int = 10,
    opto_trials: int = 30,
) -> SimulatedSession:
    """Simulate one session of ``n_units`` units (before QC) watching ``stimuli``.

    Parameters
    ----------
    stimuli : ``natural_movie_one`` (required), optionally ``natural_scenes`` and
        ``natural_movie_three``; frames (n, H, W) uint8.
    areas : areas to place units in (default all of :data:`AREA_WEIGHT`).
    genotype : ``"Pvalb"``, ``"Sst"``, ``"Vip"`` or ``"wt"``; the Cre line's type is optotaggable.
    seed, session_index : the session's random stream is ``(seed, session_index)``.
    movie_repeats : repeats of each movie (natural_movie_one in two blocks, as in BO 1.1).
    scene_repeats : presentations of each scene (and of the blank).
    opto_trials : trials per optotagging condition and level.
    """
    if "natural_movie_one" not in stimuli:
        raise InputError(None, "the simulator needs natural_movie_one")
    rng = np.random.default_rng([seed, session_index])
    areas = list(areas or AREA_WEIGHT)
    unknown = set(areas) - set(AREA_WEIGHT)
    if unknown:
        raise InputError(None, f"unknown areas {sorted(unknown)} in data.simulation.areas; choose from {list(AREA_WEIGHT)}")
    if n_units > 100_000 or not 0 <= session_index < 100:
        raise InputError(None, "the simulator keeps unit ids unique for up to 100 sessions of at most 100,000 units")
    session_id = str(790_000_000 + 1000 * (seed % 1000) + session_index)
    first_unit_id = 950_000_000 + 10_000_000 * (seed % 1000) + 100_000 * session_index

    electrodes = _electrodes(rng, session_index)
    units = _place_units(rng, electrodes, areas, n_units, first_unit_id)
    _assign_cell_types(rng, units, genotype)
    model = _ReceptiveFieldModel(rng, units)

    # ---- stimulus schedule (same order for every session; timing jitter per session) ----
    schedule = _Schedule(np.random.default_rng([seed, session_index, 1]))
    schedule.gray(10.0)
    half = movie_repeats // 2
    schedule.movie("natural_movie_one", stimuli["natural_movie_one"].n_frames, half, block=2)
    if "natural_scenes" in stimuli and scene_repeats > 0:
        schedule.gray(5.0)
        schedule.scenes(stimuli["natural_scenes"].n_frames, scene_repeats, block=5)
    if "natural_movie_three" in stimuli:
        schedule.gray(5.0)
        schedule.movie("natural_movie_three", stimuli["natural_movie_three"].n_frames, max(1, movie_repeats // 2), block=7)
    schedule.gray(5.0)
    schedule.movie("natural_movie_one", stimuli["natural_movie_one"].n_frames, movie_repeats - half, block=9)
    schedule.gray(10.0)
    opto = schedule.optotagging(opto_trials)
    schedule.gray(5.0)
    duration = schedule.t

    running = _running_speed(rng, duration)
    pupil = _pupil_area(np.random.default_rng([seed, session_index, 2]), running, duration)
    # natural_movie_one first: its statistics z-score the drive of every stimulus.
    drive = {name: model.drive(stimuli[name]) for name in sorted(stimuli, key=lambda n: n != "natural_movie_one")}
    times, owner = _spikes(rng, units, model, schedule, drive, running, duration)
    t_opto, u_opto = _light_evoked_spikes(rng, units, opto)
    times, owner = np.concatenate([times, t_opto]), np.concatenate([owner, u_opto])
    times, owner = _drop_absent_periods(rng, units, times, owner, duration)
    spikes, counts = _as_spike_trains(times, owner, units.index.to_numpy(), refractory=0.0015)
    _qc_metrics(rng, units, spikes, counts, duration)

    presentations = schedule.tables()
    session = Session(
        session_id=session_id,
        genotype=FULL_GENOTYPES[genotype],
        session_type=SESSION_TYPE,
        units=units,
        spikes=spikes,
        presentations={name: _with_repeat(t) for name, t in presentations.items()},
        running_speed=running,
        is_simulated=True,
        pupil_area=pupil,
    )
    truth = _truth(units, model, genotype, seed, session_index, areas)
    return SimulatedSession(session, electrodes, presentations, opto, truth, model, drive)


# ---- probes, units and cell types -----------------------------------------------------------
def _electrodes(rng: np.random.Generator, session_index: int) -> pd.DataFrame:
    rows = []
    for p, (probe, cortex) in enumerate(PROBE_CORTEX.items()):
        probe_id = 800_000_000 + 1000 * session_index + p
        invalid = set(rng.choice(N_CHANNELS, 4, replace=False).tolist()) | {191}  # 191: reference channel
        for ch in range(N_CHANNELS):
            vertical = 20 * (ch // 2) + 20
            location = "root"
            if _CORTEX_DEPTH[0] <= vertical < _CORTEX_DEPTH[1]:
                location = cortex
            for loc, lo, hi in _PROBE_REGIONS[probe]:
                if lo <= vertical < hi:
                    location = loc
            rows.append({
                "id": 850_000_000 + 10_000 * session_index + 1000 * p + ch,
                "location": location,
                "probe": probe,
                "probe_id": probe_id,
                "local_index": ch,
                "probe_vertical_position": vertical,
                "probe_horizontal_position": (43, 11, 59, 27)[ch % 4],
                "valid_data": ch not in invalid,
            })
    return pd.DataFrame(rows).set_index("id")


def _strip(location: str) -> str:
    return location.split("-")[0]


def _place_units(rng, electrodes: pd.DataFrame, areas: list[str], n_units: int, first_unit_id: int) -> pd.DataFrame:
    """Put units on channels by area weight; a few land on channels flagged invalid."""
    area_of_channel = electrodes["location"].map(_strip)
    pools = {a: electrodes.index[(area_of_channel == a).to_numpy()].to_numpy() for a in set(area_of_channel)}
    invalid = electrodes.index[~electrodes["valid_data"].to_numpy()].to_numpy()
    weights = np.array([AREA_WEIGHT[a] for a in areas])
    chosen = rng.choice(len(areas), size=n_units, p=weights / weights.sum())
    stray = rng.random(n_units)  # 1 %: on a channel flagged invalid
    peak = np.empty(n_units, dtype=np.int64)
    for i in range(n_units):
        if stray[i] < 0.01:
            pool = invalid
        else:
            pool = pools[areas[chosen[i]]]
        peak[i] = rng.choice(pool)
    ch = electrodes.loc[peak]
    units = pd.DataFrame(
        {
            "peak_channel_id": peak,
            "area": ch["location"].map(_strip).where(ch["location"] != "None", None).to_numpy(),
            "probe": ch["probe"].to_numpy(),
            "depth": ch["probe_vertical_position"].to_numpy(dtype=float),
        },
        index=pd.Index(np.arange(first_unit_id, first_unit_id + n_units, dtype=np.int64), name="unit_id"),
    )
    return units.sort_values(["probe", "depth"], kind="stable")


def _assign_cell_types(rng, units: pd.DataFrame, genotype: str) -> None:
    """True cell type of every unit; ChR2 expression for the Cre line's type (85 % strong)."""
    true_type = np.full(len(units), "excitatory", dtype=object)
    in_cortex = units["area"].isin(CORTEX).to_numpy()
    draw = rng.random(len(units))
    edge = 0.0
    for cell_type, share in INTERNEURON_SHARE.items():
        true_type[in_cortex & (draw >= edge) & (draw < edge + share)] = cell_type
        edge += share
    area = units["area"].to_numpy()
    true_type[np.isin(area, HIPPOCAMPUS)] = "hippocampus"
    true_type[area == "LGd"] = "LGd"
    true_type[area == "LP"] = "LP"
    true_type[pd.isna(area)] = "excitatory"
    units["true_cell_type"] = true_type
    tagged_type = CRE_TO_CELL_TYPE.get(genotype)
    units["expresses_chr2"] = (true_type == tagged_type) & (rng.random(len(units)) < 0.85)


class _ReceptiveFieldModel:
    """Per-unit linear–nonlinear model on a 38 × 76 pixel grid spanning 95° × 120°."""

    def __init__(self, rng: np.random.Generator, units: pd.DataFrame):
        n = len(units)
        area = units["area"].fillna("none").to_numpy()
        ctype = units["true_cell_type"].to_numpy()
        self.visual = np.isin(area, list(AREA_RF_SIGMA))
        self.hippocampal = np.isin(area, HIPPOCAMPUS) | (area == "none")

        # Retinotopy: each probe samples one patch of visual space; units scatter around it.
        centre = {p: (rng.uniform(-35, 35), rng.uniform(-20, 20)) for p in PROBE_CORTEX}
        cx = np.array([centre[p][0] for p in units["probe"]]) + rng.normal(0, 8, n)
        cy = np.array([centre[p][1] for p in units["probe"]]) + rng.normal(0, 6, n)
        sigma = np.array([AREA_RF_SIGMA.get(a, 6.0) for a in area]) * rng.lognormal(0, 0.2, n)
        sigma[ctype == "SST"] *= 1.6  # SST cells summate over large regions
        latency = np.array([AREA_LATENCY.get(a, 0.0) for a in area]) + rng.normal(0, 0.004, n)
        latency[ctype == "PV"] -= 0.005
        latency[ctype == "SST"] += 0.008
        tau = np.array([AREA_TAU_FRAMES.get(a, 1.0) for a in area]) * rng.lognormal(0, 0.2, n)
        tau[ctype == "SST"] *= 1.5

        population = np.where(np.isin(ctype, list(MEDIAN_RATE)), ctype, "excitatory")
        median = np.array([MEDIAN_RATE[p] for p in population])
        self.base_rate = median * rng.lognormal(0, 0.9, n)
        self.base_rate = np.clip(self.base_rate, 0.05, 80.0)
        self.running_beta = np.array([RUNNING_BETA[p] for p in population]) + rng.normal(0, 0.2, n)
        gain = rng.lognormal(np.log(0.9), 0.25, n)
        gain[ctype == "VIP"] *= 0.6
        gain[area == "LP"] *= 0.7
        self.gain = np.where(self.visual, np.clip(gain, 0.2, 1.6), 0.0)
        self.orientation = rng.uniform(0, np.pi, n)
        self.sf = np.exp(rng.uniform(np.log(0.02), np.log(0.08), n))  # cycles / degree
        self.sf[~np.isin(area, ["VISp", "LGd"])] *= 0.7
        self.phase = rng.uniform(0, 2 * np.pi, n)
        self.complex = rng.random(n) < 0.5
        self.complex[ctype == "PV"] = True
        self.untuned = ctype == "PV"
        self.on_centre = rng.random(n) < 0.5
        self.transient = rng.uniform(0.0, 0.6, n)
        self.coupling = rng.uniform(0.3, 1.0, n)  # to the shared population gain
        self.cx, self.cy, self.sigma, self.latency, self.tau = cx, cy, sigma, np.maximum(latency, 0.0), tau
        self.area, self.cell_type = area, ctype
        self._z_stats: tuple[np.ndarray, np.ndarray] | None = None

    def _filters(self) -> tuple[np.ndarray, np.ndarray]:
        """Even and odd filters, (n_pixels, n_units) each (odd is zero for DoG / simple units)."""
        h, w = GRID
        y = (np.arange(h) + 0.5) / h * SCREEN_DEG[0] - SCREEN_DEG[0] / 2
        x = (np.arange(w) + 0.5) / w * SCREEN_DEG[1] - SCREEN_DEG[1] / 2
        X, Y = np.meshgrid(x, y)
        dx = X.ravel()[:, None] - self.cx[None]
        dy = Y.ravel()[:, None] - self.cy[None]
        r2 = dx**2 + dy**2
        env = np.exp(-r2 / (2 * self.sigma**2))
        proj = dx * np.cos(self.orientation) + dy * np.sin(self.orientation)
        arg = 2 * np.pi * self.sf * proj + self.phase
        even, odd = env * np.cos(arg), env * np.sin(arg)
        dog = env - 0.6 * np.exp(-r2 / (2 * (2.5 * self.sigma) ** 2))
        is_lgd = self.area == "LGd"
        even[:, is_lgd] = (dog * np.where(self.on_centre, 1.0, -1.0))[:, is_lgd]
        odd[:, is_lgd | ~self.complex] = 0.0
        # Untuned (PV) units: local contrast energy, no orientation preference.
        even[:, self.untuned] = env[:, self.untuned]
        odd[:, self.untuned] = 0.0
        norm = np.sqrt((even**2).sum(0) + (odd**2).sum(0)) + 1e-9
        return even / norm, odd / norm

    def drive(self, stimulus: Stimulus) -> np.ndarray:
        """z-scored stimulus drive, (n_frames, n_units) float32; frame −1 (gray) is row ``-1``.

        z-scoring uses natural_movie_one statistics for every stimulus (the first one called),
        so a gray screen has the same drive everywhere.
        """
        frames = _to_grid(stimulus.frames).reshape(stimulus.n_frames, -1)
        even, odd = self._filters()
        if self.untuned.any():
            local = np.abs(frames - frames.mean(axis=1, keepdims=True))
        lin_e = frames @ even
        lin_o = frames @ odd
        d = np.where(self.complex, np.sqrt(lin_e**2 + lin_o**2), lin_e)
        if self.untuned.any():
            d[:, self.untuned] = local @ even[:, self.untuned]
        gray = np.zeros((1, d.shape[1]))  # a zero-contrast frame drives no filter
        if stimulus.frame_rate:  # movies: transient component and temporal integration
            change = np.abs(np.diff(d, axis=0, prepend=d[:1]))
            d = (1 - self.transient) * d + self.transient * change
            d = _leaky(d, self.tau)
        d = np.vstack([d, gray])
        if self._z_stats is None:
            self._z_stats = (d[:-1].mean(0), d[:-1].std(0) + 1e-9)
        mean, std = self._z_stats
        return np.clip((d - mean) / std, -4, 4).astype(np.float32)

    def rate(self, z: np.ndarray) -> np.ndarray:
        """Firing rate (Hz) for drive ``z`` (..., n_units): log-normal-mean-preserving exponential."""
        g = self.gain
        return self.base_rate * np.exp(g * z - g**2 / 2)


def _to_grid(frames: np.ndarray) -> np.ndarray:
    """Frames (n, H, W) uint8 → contrast images (n, 38, 76) float32 in [−1, 1] (area averaging)."""
    from skimage.transform import resize

    n, h, w = frames.shape
    fy, fx = h // GRID[0], w // GRID[1]
    if h == GRID[0] * fy and w == GRID[1] * fx:
        small = frames.reshape(n, GRID[0], fy, GRID[1], fx).mean(axis=(2, 4), dtype=np.float32)
    else:
        small = np.stack([resize(f, GRID, anti_aliasing=True, preserve_range=True) for f in frames]).astype(np.float32)
    return (small - 127.5) / 127.5


def _leaky(d: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Leaky integration along frames with per-unit time constant ``tau`` (frames)."""
    a = np.exp(-1.0 / tau)
    out = np.empty_like(d)
    acc = d[0].copy()
    for t in range(len(d)):
        acc = a * acc + (1 - a) * d[t]
        out[t] = acc
    return out


# ---- the stimulus schedule ------------------------------------------------------------------
class _Schedule:
    """Builds the presentation tables and the list of constant-rate intervals to simulate."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.t = 0.0
        self.rows: dict[str, list[pd.DataFrame]] = {}
        #: (start, duration, stimulus or None, frame index or -1, trial id) per interval.
        self.intervals: list[tuple[np.ndarray, np.ndarray, str | None, np.ndarray, np.ndarray]] = []
        self._trial = 0

    def gray(self, seconds: float) -> None:
        n = max(1, round(seconds / SCENE_S))
        starts = self.t + SCENE_S * np.arange(n)
        self.intervals.append((starts, np.full(n, SCENE_S), None, np.full(n, -1), self._trials(n)))
        self.t += n * SCENE_S

    def movie(self, name: str, n_frames: int, repeats: int, block: int) -> None:
        # 2 refreshes of a 60 Hz display per frame (a stable clock), with sub-ms photodiode jitter.
        n = n_frames * repeats
        starts = self.t + FRAME_S * np.arange(n) + self.rng.normal(0, 1e-4, n)
        dur = np.diff(np.r_[starts, self.t + FRAME_S * n])
        frame = np.tile(np.arange(n_frames), repeats)
        self._add(name, starts, dur, frame, block, stimulus_index={"natural_movie_one": 0, "natural_movie_three": 3}[name])
        chunk = frame // 8 + np.repeat(np.arange(repeats), n_frames) * (n_frames // 8 + 1)
        self.intervals.append((starts, dur, name, frame, self._trial + chunk))
        self._trial += int(chunk.max()) + 1
        self.t = float(starts[-1] + dur[-1])

    def scenes(self, n_images: int, repeats: int, block: int) -> None:
        order = np.concatenate([np.random.default_rng([PROTOCOL_SEED, r]).permutation(np.arange(-1, n_images)) for r in range(repeats)])
        n = len(order)
        starts = self.t + SCENE_S * np.arange(n) + self.rng.normal(0, 5e-5, n)
        dur = np.full(n, SCENE_S)
        self._add("natural_scenes", starts, dur, order, block, stimulus_index=5)
        self.intervals.append((starts, dur, "natural_scenes", order, self._trials(n)))
        self.t = float(starts[-1] + SCENE_S)

    def optotagging(self, trials: int) -> pd.DataFrame:
        conditions = [("pulse", "a single square pulse", 0.005), ("pulse", "a single square pulse", 0.010),
                      ("raised_cosine", "half-period of a cosine wave", 1.0)]
        levels = (1.0, 1.5, 2.0)
        spec = [(c, lv) for c in conditions for lv in levels for _ in range(trials if c[0] == "pulse" else max(1, trials // 3))]
        order = np.random.default_rng(PROTOCOL_SEED).permutation(len(spec))
        rows, t = [], self.t + 1.0
        for i in order:
            (name, condition, duration), level = spec[i]
            rows.append({"start_time": t, "stop_time": t + duration, "condition": condition, "level": level,
                         "duration": duration, "stimulus_name": name})
            t += duration + 1.0 + self.rng.uniform(0, 0.5)
        self.gray(t - self.t)  # the light epoch is gray-screen for the visual system
        return pd.DataFrame(rows)

    def _trials(self, n: int) -> np.ndarray:
        ids = self._trial + np.arange(n)
        self._trial += n
        return ids

    def _add(self, name, starts, dur, frame, block, stimulus_index) -> None:
        table = pd.DataFrame({
            "start_time": starts,
            "stop_time": starts + dur,
            "stimulus_name": name,
            "stimulus_block": float(block),
            "frame": frame.astype(float),
            "stimulus_index": float(stimulus_index),
        })
        self.rows.setdefault(name, []).append(table)

    def tables(self) -> dict[str, pd.DataFrame]:
        return {name: pd.concat(parts, ignore_index=True) for name, parts in self.rows.items()}


def _with_repeat(table: pd.DataFrame) -> pd.DataFrame:
    out = table[["start_time", "stop_time", "frame"]].copy()
    out["frame"] = out["frame"].astype(np.int64)
    out["repeat"] = derive_repeats(table)
    return out


# ---- running, spikes and light responses ----------------------------------------------------
def _running_speed(rng: np.random.Generator, duration: float, rate_hz: float = 60.0) -> RunningSpeed:
    """Bouts of running (15–35 cm/s) between stationary periods, sampled at 60 Hz."""
    n_sec = int(np.ceil(duration)) + 2
    state = np.zeros(n_sec, dtype=bool)
    for s in range(1, n_sec):
        state[s] = rng.random() < (0.92 if state[s - 1] else 0.04)
    level = np.where(state, rng.uniform(15, 35, n_sec), 0.0)
    t = np.arange(0, duration, 1 / rate_hz)
    speed = np.interp(t, np.arange(n_sec), level)
    kernel = np.ones(30) / 30
    speed = np.convolve(speed, kernel, mode="same") + rng.normal(0, 0.8, len(t))
    return RunningSpeed(times=t, speed=speed.astype(np.float64), source="simulated")


def running_state(speed: np.ndarray) -> np.ndarray:
    """The planted running state s(v) (0 at rest, 1 at 25 cm/s, saturating at 1.2); a unit's
    rate is multiplied by exp(running_beta · s(v)) (the ground truth of the speed relation)."""
    v = np.maximum(np.asarray(speed, dtype=np.float64), 0.0)
    h, ref = RUNNING_HALF_SPEED, RUNNING_REF_SPEED
    return v / (v + h) * (ref + h) / ref


def _running_state(running: RunningSpeed, t: np.ndarray) -> np.ndarray:
    return running_state(np.interp(t, running.times, running.speed))


def _pupil_area(rng: np.random.Generator, running: RunningSpeed, duration: float) -> PupilArea:
    """Pupil area at 30 Hz: dilates with running (1 s lag) and with slow arousal noise; about
    1 % of samples are NaN (blinks), as in the filtered gaze-mapping output."""
    t = np.arange(0, duration, 1 / PUPIL_RATE_HZ)
    rho = np.exp(-1 / (PUPIL_RATE_HZ * PUPIL_TAU_S))
    noise = rng.normal(0, PUPIL_NOISE_SD * np.sqrt(1 - rho**2), len(t))
    arousal = np.zeros(len(t))
    for i in range(1, len(t)):
        arousal[i] = rho * arousal[i - 1] + noise[i]
    log_area = np.log(PUPIL_BASE) + PUPIL_RUN_GAIN * _running_state(running, t - 1.0) + arousal
    area = np.exp(log_area)
    area[rng.random(len(t)) < 0.01] = np.nan
    return PupilArea(times=t, area=area, source="simulated")


def _spikes(rng, units, model: _ReceptiveFieldModel, schedule: _Schedule, drive, running, duration):
    """Gamma-modulated inhomogeneous Poisson spikes for every constant-rate interval."""
    n = len(units)
    n_trials = schedule._trial + 1
    # Slow shared population gain (log AR(1) over ~0.27 s trials) and private gamma gains.
    shared = np.zeros(n_trials)
    for i in range(1, n_trials):
        shared[i] = 0.77 * shared[i - 1] + rng.normal(0, 0.25 * np.sqrt(1 - 0.77**2))
    # Hippocampal rates: a slow log-rate process unrelated to the frames (per 0.25 s step).
    n_steps = int(duration / SCENE_S) + 2
    hippo = np.zeros((n_steps, n), dtype=np.float32)
    rho = np.exp(-SCENE_S / 2.0)
    noise = rng.normal(0, 0.9 * np.sqrt(1 - rho**2), (n_steps, n)).astype(np.float32)
    for s in range(1, n_steps):
        hippo[s] = rho * hippo[s - 1] + noise[s]
    times, owner = [], []
    for starts, dur, name, frame, trial in schedule.intervals:
        z = drive[name][frame] if name is not None else np.broadcast_to(drive["natural_movie_one"][-1], (len(starts), n))
        if name == "natural_scenes":  # onset transient, then sustained
            z = z + 0.5 * model.transient * (frame >= 0)[:, None]
        rate = model.rate(z).astype(np.float32)
        h = model.hippocampal
        step = np.minimum((starts / SCENE_S).astype(int), n_steps - 1)
        rate[:, h] = (model.base_rate[h] * np.exp(hippo[step][:, h] - 0.9**2 / 2)).astype(np.float32)
        gain = np.exp(model.coupling[None] * shared[trial][:, None]) * rng.gamma(4.0, 0.25, (len(starts), n))
        run = np.exp(model.running_beta[None] * _running_state(running, starts)[:, None])
        lam = rate * gain * run * dur[:, None]
        counts = rng.poisson(np.minimum(lam, 50.0))
        interval, unit = np.nonzero(counts)
        c = counts[interval, unit]
        t = np.repeat(starts[interval], c) + rng.random(c.sum()) * np.repeat(dur[interval], c)
        u = np.repeat(unit, c)
        if name is not None:  # stimulus-driven spikes arrive after the unit's latency
            t = t + model.latency[u]
        times.append(t)
        owner.append(u)
    return np.concatenate(times), np.concatenate(owner)


def _light_evoked_spikes(rng, units: pd.DataFrame, opto: pd.DataFrame):
    """1–2 spikes 2–6 ms after each pulse onset for expressing units; rate rise for cosines."""
    expressing = np.flatnonzero(units["expresses_chr2"].to_numpy())
    reliability = rng.uniform(0.5, 0.95, len(expressing))
    times, owner = [], []
    for _, trial in opto.iterrows():
        level = trial["level"] / 2.0
        if trial["stimulus_name"] == "pulse":
            fire = rng.random(len(expressing)) < reliability * (0.6 + 0.4 * level)
            lat = np.clip(rng.lognormal(np.log(0.0035), 0.25, fire.sum()), 0.0015, 0.008)
            times.append(trial["start_time"] + lat)
            owner.append(expressing[fire])
            second = fire & (rng.random(len(expressing)) < 0.3 * (trial["duration"] > 0.006))
            times.append(trial["start_time"] + 0.006 + rng.uniform(0, 0.003, second.sum()))
            owner.append(expressing[second])
        else:
            for u in expressing:
                k = rng.poisson(40.0 * level * trial["duration"] / 2)
                t = trial["start_time"] + trial["duration"] * np.arccos(1 - 2 * rng.random(k)) / np.pi
                times.append(t)
                owner.append(np.full(k, u))
    if not times:
        return np.empty(0), np.empty(0, dtype=np.int64)
    return np.concatenate(times), np.concatenate(owner).astype(np.int64)


def _drop_absent_periods(rng, units, times, owner, duration):
    """About 6 % of units drift off the probe for 10–40 % of the session (low presence ratio)."""
    absent = rng.random(len(units)) < 0.06
    length = rng.uniform(0.1, 0.4, len(units)) * duration * absent
    start = rng.uniform(0, 1, len(units)) * (duration - length)
    keep = ~((times >= start[owner]) & (times < start[owner] + length[owner]))
    units["drifted_out"] = absent
    return times[keep], owner[keep]


def _as_spike_trains(times, owner, unit_ids, refractory: float) -> tuple[SpikeTrains, np.ndarray]:
    """Sort by (unit, time) and drop spikes inside the absolute refractory period."""
    order = np.lexsort((times, owner))
    times, owner = times[order], owner[order]
    too_close = np.r_[False, (np.diff(times) < refractory) & (owner[1:] == owner[:-1])]
    times, owner = times[~too_close], owner[~too_close]
    counts = np.bincount(owner, minlength=len(unit_ids))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return SpikeTrains(times=np.maximum(times, 0.0), offsets=offsets, unit_ids=unit_ids), counts


def _qc_metrics(rng, units: pd.DataFrame, spikes: SpikeTrains, counts: np.ndarray, duration: float) -> None:
    """Allen QC columns: presence ratio and firing rate from the spikes, the rest drawn."""
    n = len(units)
    # Presence ratio: fraction of 100 session blocks holding a spike (AllenSDK's definition).
    block = np.floor(spikes.times / duration * 100).clip(0, 99).astype(np.int64)
    owner = np.repeat(np.arange(n), counts)
    blocks = (np.bincount(owner * 100 + block, minlength=100 * n).reshape(n, 100) > 0).sum(1)
    ctype = units["true_cell_type"].to_numpy()
    narrow = ctype == "PV"
    units["cluster_id"] = np.arange(n)
    units["quality"] = np.where(rng.random(n) < 0.03, "noise", "good")
    units["firing_rate"] = counts / duration
    units["presence_ratio"] = blocks / 100
    units["amplitude_cutoff"] = np.clip(rng.exponential(0.045, n), 0, 0.5)
    units["isi_violations"] = rng.exponential(0.18, n)
    units["snr"] = rng.lognormal(np.log(3.0), 0.35, n)
    units["amplitude"] = rng.lognormal(np.log(120), 0.4, n)
    units["d_prime"] = rng.lognormal(np.log(4.5), 0.3, n)
    units["isolation_distance"] = rng.lognormal(np.log(55), 0.4, n)
    units["l_ratio"] = rng.exponential(0.03, n)
    units["nn_hit_rate"] = rng.beta(9, 1.5, n)
    units["nn_miss_rate"] = rng.beta(1, 60, n)
    units["silhouette_score"] = rng.beta(3, 20, n)
    units["max_drift"] = rng.lognormal(np.log(25), 0.5, n)
    units["cumulative_drift"] = rng.lognormal(np.log(180), 0.5, n)
    units["waveform_duration"] = np.where(narrow, rng.normal(0.30, 0.04, n), np.where(ctype == "SST", rng.normal(0.45, 0.08, n), rng.normal(0.72, 0.12, n))).clip(0.12, 1.4)
    units["waveform_halfwidth"] = units["waveform_duration"] * rng.uniform(0.3, 0.45, n)
    units["PT_ratio"] = rng.lognormal(np.log(0.5), 0.3, n)
    units["repolarization_slope"] = rng.lognormal(np.log(0.5), 0.3, n)
    units["recovery_slope"] = -rng.lognormal(np.log(0.07), 0.4, n)
    units["spread"] = rng.choice([40.0, 50.0, 60.0, 70.0, 80.0], n)
    units["velocity_above"] = rng.normal(0.3, 0.5, n)
    units["velocity_below"] = rng.normal(-0.1, 0.5, n)
    units["local_index"] = np.arange(n)


def _truth(units: pd.DataFrame, model: _ReceptiveFieldModel, genotype: str, seed: int, session_index: int, areas) -> dict:
    per_unit = {
        "unit_id": units.index.tolist(),
        "area": units["area"].tolist(),
        "true_cell_type": units["true_cell_type"].tolist(),
        "expresses_chr2": units["expresses_chr2"].astype(bool).tolist(),
        "drifted_out": units["drifted_out"].astype(bool).tolist(),
        "rf_x_deg": model.cx.round(3).tolist(),
        "rf_y_deg": model.cy.round(3).tolist(),
        "rf_sigma_deg": model.sigma.round(3).tolist(),
        "orientation_rad": model.orientation.round(4).tolist(),
        "spatial_frequency_cpd": model.sf.round(5).tolist(),
        "complex_cell": model.complex.tolist(),
        "latency_s": model.latency.round(5).tolist(),
        "base_rate_hz": model.base_rate.round(4).tolist(),
        "stimulus_gain": model.gain.round(4).tolist(),
        "running_beta": model.running_beta.round(4).tolist(),
        "stimulus_locked": model.visual.tolist(),
    }
    return {
        "format": "neurrator-simulation-truth/1",
        "genotype": genotype,
        "seed": seed,
        "session_index": session_index,
        "areas": list(areas),
        "grid": list(GRID),
        "screen_deg": list(SCREEN_DEG),
        "model": "Gabor (simple/complex) and DoG LN units on stimulus pixels; exponential nonlinearity; "
                 "gamma-modulated Poisson spikes; see neurrator.data.simulate",
        "running": {
            "model": "rate × exp(running_beta · s(v)), s(v) = v⁺ / (v⁺ + half_speed) · (ref_speed + half_speed) / "
                     "ref_speed with v⁺ = max(v, 0), v = running speed (cm/s) at the presentation's start; "
                     "running_beta per unit in units.running_beta",
            "half_speed_cm_s": RUNNING_HALF_SPEED,
            "ref_speed_cm_s": RUNNING_REF_SPEED,
            "mean_beta_by_population": dict(RUNNING_BETA),
            "beta_sd": 0.2,
        },
        "pupil": {
            "model": "log area = log(base) + run_gain · s(v(t − 1 s)) + AR(1) arousal noise; ~1 % NaN (blinks); "
                     "no unit's rate depends on the pupil",
            "base": PUPIL_BASE, "run_gain": PUPIL_RUN_GAIN, "noise_sd": PUPIL_NOISE_SD, "tau_s": PUPIL_TAU_S,
            "rate_hz": PUPIL_RATE_HZ,
        },
        "units": per_unit,
    }
