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
    """Options of ``neurrator simulate`` (used when ``data.source == "simulate"``)."""

    model_config = ConfigDict(extra="forbid")
    n_units: int = Field(2000, ge=1)
    n_sessions: int = Field(1, ge=1)
    areas: list[str] = ["VISp", "VISl", "VISal", "VISrl", "VISam", "VISpm", "LGd", "LP", "CA1", "CA3", "DG"]
    genotype: Literal["wt", "Pvalb", "Sst", "Vip"] = "wt"
    movie_repeats: int = Field(20, ge=2)
    scene_repeats: int = Field(50, ge=1)
    include_movie_three: bool = False
    seed: int = 0


class DataConfig(BaseModel):
    """Where the sessions of a run come from."""

    model_config = ConfigDict(extra="forbid")
    source: Literal["simulate", "nwb"] = "simulate"
    nwb_paths: list[Path] = []
    stimulus: Literal["natural_movie_one", "natural_movie_three", "natural_scenes"] = "natural_movie_one"
    #: Folder with Allen stimulus templates (natural_movie_one.npy, natural_scene_<i>.tiff ...).
    #: ``None`` uses the embedded demo stimulus.
    stimulus_dir: Path | None = None
    #: JSON file mapping frame index → list of captions; overrides bundled captions.
    captions_json: Path | None = None
    unit_filter: UnitFilterConfig = UnitFilterConfig()
    simulation: SimulationConfig = SimulationConfig()
