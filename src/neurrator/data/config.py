"""Config of the data layer: where sessions come from and which units pass QC."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UnitFilterConfig(BaseModel):
    """AllenSDK's default unit filter. Set a field to ``None`` to drop that criterion."""

    model_config = ConfigDict(extra="forbid")
    amplitude_cutoff_max: float | None = 0.1
    presence_ratio_min: float | None = 0.95
    isi_violations_max: float | None = 0.5
    quality: str | None = "good"
    require_valid_data: bool = True
    require_area: bool = True


class SimulationConfig(BaseModel):
    """Options of ``neurrator simulate`` (used when ``data.source == "simulate"``).

    The default simulates three sessions (one Pvalb-, one Sst-, one Vip-Cre × Ai32 mouse) of
    1,000 units each before QC (about 690 pass), which ingest pools into one frame-aligned
    pseudo-mouse of about 2,000 units whose optotagged PV, SST and VIP units can be queried.
    """

    model_config = ConfigDict(extra="forbid")
    #: Units per session before QC (about 70 % pass AllenSDK's default filter).
    n_units: int = Field(1000, ge=1)
    #: One session per genotype in turn; ``n_sessions`` (if set) cycles through them.
    genotypes: list[Literal["wt", "Pvalb", "Sst", "Vip"]] = Field(["Pvalb", "Sst", "Vip"], min_length=1)
    n_sessions: int | None = Field(None, ge=1)
    areas: list[str] = ["VISp", "VISl", "VISal", "VISrl", "VISam", "VISpm", "LGd", "LP", "CA1", "CA3", "DG"]
    movie_repeats: int = Field(20, ge=2)
    scene_repeats: int = Field(50, ge=0)
    include_movie_three: bool = False
    #: Add a (units, 82, 384) waveform_mean column as in real files (large; for memory tests).
    waveform_mean: bool = False
    seed: int = 0

    def session_genotypes(self) -> list[str]:
        n = self.n_sessions or len(self.genotypes)
        return [self.genotypes[k % len(self.genotypes)] for k in range(n)]


class OptotagConfig(BaseModel):
    """Light-response rule for optotagging (see :mod:`neurrator.data.optotag`)."""

    model_config = ConfigDict(extra="forbid")
    pulse_duration: float = Field(0.010, gt=0)
    evoked_window: tuple[float, float] = (0.001, 0.009)
    baseline_window: tuple[float, float] = (-0.010, -0.002)
    min_ratio: float = 2.0
    baseline_offset_hz: float = 1.0
    min_reliability: float = Field(0.2, ge=0, le=1)
    max_median_latency: float | None = 0.009


class DataConfig(BaseModel):
    """Where the sessions of a run come from."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["simulate", "nwb"] = "simulate"
    nwb_paths: list[Path] = []
    stimulus: Literal["natural_movie_one", "natural_movie_three", "natural_scenes"] = "natural_movie_one"
    #: Folder with Allen stimulus templates (natural_movie_one.npy, natural_scene_<i>.tiff ...).
    #: ``None`` uses the embedded demo stimulus: simulated sessions only, unless
    #: ``allow_demo_stimulus`` (recordings were not made with the demo's frames).
    stimulus_dir: Path | None = None
    #: Pair recorded (``source: nwb``) sessions with the embedded demo stimulus, a labelled stand-in.
    allow_demo_stimulus: bool = False
    #: JSON file mapping frame index → list of captions: the stimulus's reference captions
    #: (replacing the demo's bundled ones). The one caption key; checked at ingest.
    captions_json: Path | None = None
    unit_filter: UnitFilterConfig = UnitFilterConfig()
    optotag: OptotagConfig = OptotagConfig()
    simulation: SimulationConfig = SimulationConfig()
    #: DANDI 000021 asset paths (``sub-…/sub-…_ses-….nwb``) that ``ingest`` downloads into
    #: ``download_dir`` (resuming, size/checksum-checked) and reads after ``nwb_paths``.
    dandi_assets: list[str] = []
    #: A text file listing many sessions, one per line: a local NWB path (relative to the file)
    #: or ``dandi:<asset path>``. Ingest reads them one at a time into per-session caches.
    manifest: Path | None = None
    #: Pool the sessions into one frame-aligned pseudo-mouse (``ingest/dataset/``). ``false``
    #: writes only the per-session caches (``ingest/sessions/``), e.g. for multi-session training.
    pseudo_mouse: bool = True
    dandi_api_url: str = "https://api.dandiarchive.org/api"
    #: Download cache for ``neurrator.data.download`` (DANDI / Allen warehouse sessions).
    download_dir: Path = Path(".neurrator-cache/sessions")
