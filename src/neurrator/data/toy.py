"""A tiny in-memory session for fast tests of everything downstream of the reader.

Unlike :mod:`neurrator.data.simulate` it writes no NWB and has no receptive-field model:
each unit fires as a Poisson process whose rate is a fixed random function of the frame, so
responses repeat across trials and frames can be decoded.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from neurrator.data.types import RunningSpeed, Session, SpikeTrains, Stimulus

_TOY_AREAS = ("VISp", "VISl", "VISal", "LGd", "CA1")


def toy_session(
    n_units: int = 40,
    n_repeats: int = 6,
    n_frames: int = 60,
    *,
    seed: int = 0,
    session_id: str = "toy0",
    first_unit_id: int = 1000,
    genotype: str = "Pvalb-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    frame_duration: float = 1 / 30,
    jitter_s: float = 1e-4,
    n_scenes: int = 0,
    scene_repeats: int = 3,
) -> Session:
    """A session with ``n_units`` frame-locked Poisson units watching a ``n_frames`` movie.

    Returns a :class:`Session` with ``natural_movie_one`` presentations (``n_repeats`` repeats)
    and, if ``n_scenes > 0``, ``natural_scenes`` presentations (random order, 250 ms each, with
    blanks). Every fifth unit is labelled ``cell_type`` of the genotype's Cre line.
    """
    rng = np.random.default_rng(seed)
    durations = frame_duration + rng.normal(0, jitter_s, (n_repeats, n_frames))
    repeat_starts = 10.0 + np.arange(n_repeats) * (n_frames * frame_duration + 1.0)
    starts = repeat_starts[:, None] + np.concatenate([np.zeros((n_repeats, 1)), np.cumsum(durations, 1)[:, :-1]], 1)
    movie = pd.DataFrame({
        "start_time": starts.ravel(),
        "stop_time": (starts + durations).ravel(),
        "frame": np.tile(np.arange(n_frames), n_repeats),
        "repeat": np.repeat(np.arange(n_repeats), n_frames),
    })
    presentations = {"natural_movie_one": movie}
    [(starts[:, 0], durations.sum(1), np.tile(np.arange(n_frames), (n_repeats, 1)), starts)]
    t_end = float(starts[-1, -1] + 1.0)
    if n_scenes:
        order = np.concatenate([rng.permutation(np.arange(-1, n_scenes)) for _ in range(scene_repeats)])
        s_starts = t_end + 1.0 + 0.25 * np.arange(len(order))
        scenes = pd.DataFrame({"start_time": s_starts, "stop_time": s_starts + 0.25, "frame": order})
        scenes["repeat"] = scenes.groupby("frame").cumcount()
        presentations["natural_scenes"] = scenes
        t_end = float(s_starts[-1] + 1.0)

    base = rng.lognormal(np.log(4.0), 0.7, n_units)
    tuning = rng.gamma(1.0, 1.0, (max(n_frames, n_scenes + 1), n_units))
    latency = 0.04
    times, lengths = [], []
    for u in range(n_units):
        parts = [np.sort(rng.uniform(0, t_end, rng.poisson(base[u] * 0.3 * t_end)))]  # background
        pres = np.concatenate([p["start_time"].to_numpy() for p in presentations.values()])
        dur = np.concatenate([(p["stop_time"] - p["start_time"]).to_numpy() for p in presentations.values()])
        frm = np.concatenate([p["frame"].to_numpy() for p in presentations.values()])
        lam = base[u] * tuning[np.maximum(frm, 0), u] * (frm >= 0) * dur * 2
        n = rng.poisson(lam)
        parts.append(np.repeat(pres + latency, n) + rng.uniform(0, 1, n.sum()) * np.repeat(dur, n))
        t = np.sort(np.concatenate(parts))
        times.append(t)
        lengths.append(len(t))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    unit_ids = np.arange(first_unit_id, first_unit_id + n_units, dtype=np.int64)
    cre = next((ct for cre, ct in (("Pvalb", "PV"), ("Sst", "SST"), ("Vip", "VIP")) if genotype.startswith(cre)), None)
    units = pd.DataFrame(
        {
            "area": [_TOY_AREAS[i % len(_TOY_AREAS)] for i in range(n_units)],
            "probe": ["probeA" if i % 2 == 0 else "probeB" for i in range(n_units)],
            "depth": rng.uniform(0, 3840, n_units).round(),
            "cell_type": pd.Series([cre if (cre and i % 5 == 0) else None for i in range(n_units)], dtype=object),
            "firing_rate": np.array(lengths) / t_end,
            "quality": "good",
        },
        index=pd.Index(unit_ids, name="unit_id"),
    )
    speed_t = np.arange(0, t_end, 0.1)
    return Session(
        session_id=session_id,
        genotype=genotype,
        session_type="brain_observatory_1.1",
        units=units,
        spikes=SpikeTrains(times=np.concatenate(times), offsets=offsets, unit_ids=unit_ids),
        presentations=presentations,
        running_speed=RunningSpeed(speed_t, np.abs(rng.normal(0, 5, len(speed_t)))),
        is_simulated=True,
    )


def toy_stimuli(n_frames: int = 40, n_scenes: int = 4) -> dict[str, Stimulus]:
    """Small real-image stimuli (scikit-image photographs, 304 × 608) for fast simulator tests.

    ``natural_movie_one`` holds ``n_frames`` frames cycling through four photographs every
    ten frames; ``natural_scenes`` holds ``n_scenes`` of them.
    """
    from skimage import data
    from skimage.transform import resize

    photos = [data.camera(), data.astronaut()[..., 0], data.coffee()[..., 0], data.chelsea()[..., 0]]
    small = [(resize(p, (304, 608), anti_aliasing=True) * 255).astype(np.uint8) for p in photos]
    movie = np.stack([small[(i // 10) % len(small)] for i in range(n_frames)])
    scenes = np.stack([small[i % len(small)] for i in range(n_scenes)])
    return {
        "natural_movie_one": Stimulus("natural_movie_one", movie, 30.0, is_stand_in=True),
        "natural_scenes": Stimulus("natural_scenes", scenes, None, is_stand_in=True),
    }
