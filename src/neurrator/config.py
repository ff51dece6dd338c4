"""The run configuration: one typed object, loadable from YAML, overridable from the CLI.

Each pipeline layer owns its section (``neurrator/<layer>/config.py``); this module only
composes them, so it is the one place that sees them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from neurrator.analysis.config import AnalysisConfig
from neurrator.core.errors import InputError
from neurrator.data.config import DataConfig
from neurrator.encoder.config import EncoderConfig
from neurrator.encoder.lm_config import LMDecodeConfig
from neurrator.evaluate.config import EvaluateConfig
from neurrator.narrate.config import NarrateConfig
from neurrator.preprocess.config import PreprocessConfig
from neurrator.report.config import ReportConfig
from neurrator.sweep.config import SweepConfig
from neurrator.vision.config import VisionConfig


class RunConfig(BaseModel):
    """Everything a run needs. ``neurrator <stage> --help`` documents the common overrides."""

    model_config = ConfigDict(extra="forbid")
    name: str = "demo"
    seed: int = 0
    #: Where patch-target caches live (shared between runs; keyed by space id and stimulus hash).
    cache_dir: Path = Path(".neurrator-cache")
    data: DataConfig = DataConfig()
    preprocess: PreprocessConfig = PreprocessConfig()
    vision: VisionConfig = VisionConfig()
    encoder: EncoderConfig = EncoderConfig()
    lm_decode: LMDecodeConfig = LMDecodeConfig()
    narrate: NarrateConfig = NarrateConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    report: ReportConfig = ReportConfig()
    sweep: SweepConfig = SweepConfig()

    # ---- loading and overriding -------------------------------------------------------
    @classmethod
    def from_yaml(cls, path: str | Path) -> RunConfig:
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "config file not found")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise InputError(path, f"not valid YAML: {exc}") from None
        return cls.validated(raw, source=path)

    @classmethod
    def validated(cls, raw: dict[str, Any], *, source: str | Path | None = None) -> RunConfig:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(source, f"invalid config value {where}: {err['msg']}") from None

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        """Apply dotted-key overrides, e.g. ``{"encoder.epochs": 5}``, and re-validate."""
        raw = self.model_dump(mode="json")
        for key, value in overrides.items():
            node = raw
            *parents, leaf = key.split(".")
            for p in parents:
                if not isinstance(node.get(p), dict):
                    raise InputError(None, f"unknown config key {key!r}")
                node = node[p]
            if leaf not in node:
                raise InputError(None, f"unknown config key {key!r}")
            node[leaf] = value
        return self.validated(raw)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
