"""The run directory: ``runs/<name>/`` holds the resolved config, a manifest and each
stage's artifacts in a sub-folder named after the stage.

Stages read their inputs from here, so any stage can be re-run on its own.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError
from neurrator.core.io import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
MANIFEST_FILE = "manifest.json"

_VERSIONED_PACKAGES = (
    "neurrator", "numpy", "torch", "transformers", "sentence-transformers", "pynwb", "h5py",
    "scikit-learn", "scipy", "cebra", "pandas", "pyarrow",
)


def _git_hash() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


class RunDir:
    """A run directory.

    >>> run = RunDir.create("runs/demo", RunConfig())   # doctest: +SKIP
    >>> run.stage_dir("train")                          # doctest: +SKIP
    PosixPath('runs/demo/train')
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # ---- creation / opening --------------------------------------------------------------
    @classmethod
    def create(cls, root: str | Path, config: RunConfig) -> RunDir:
        """Create (or reuse) ``root`` and write the resolved config and a fresh manifest header."""
        run = cls(root)
        run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.root / CONFIG_FILE, config.to_yaml())
        manifest = run.manifest() if (run.root / MANIFEST_FILE).exists() else {}
        manifest.update(
            {
                "name": config.name,
                "seed": config.seed,
                "created": manifest.get("created") or datetime.now(UTC).isoformat(timespec="seconds"),
                "git_commit": _git_hash(),
                "versions": package_versions(),
                "platform": platform.platform(),
                "argv": sys.argv,
            }
        )
        manifest.setdefault("stages", {})
        manifest.setdefault("stand_ins", {})
        atomic_write_json(run.root / MANIFEST_FILE, manifest)
        return run

    @classmethod
    def open(cls, root: str | Path) -> RunDir:
        """Open an existing run; error if it does not exist."""
        run = cls(root)
        if not (run.root / CONFIG_FILE).is_file():
            raise InputError(run.root, f"not a run directory (no {CONFIG_FILE}); run `neurrator demo` or a stage with --run first")
        return run

    # ---- contents ------------------------------------------------------------------------
    def config(self) -> RunConfig:
        return RunConfig.from_yaml(self.root / CONFIG_FILE)

    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST_FILE
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return {"stages": {}, "stand_ins": {}}
        except json.JSONDecodeError as exc:
            raise InputError(path, f"manifest is not valid JSON: {exc}") from None

    def update_manifest(self, **fields: Any) -> None:
        manifest = self.manifest()
        for key, value in fields.items():
            if isinstance(value, dict) and isinstance(manifest.get(key), dict):
                manifest[key].update(value)
            else:
                manifest[key] = value
        atomic_write_json(self.root / MANIFEST_FILE, manifest)

    def mark_stand_in(self, component: str, description: str) -> None:
        """Record that ``component`` (e.g. ``"vision_space"``) is an offline stand-in."""
        self.update_manifest(stand_ins={component: description})

    def stage_dir(self, stage: str) -> Path:
        return self.root / stage

    def require(self, stage: str, filename: str) -> Path:
        """Path of an artifact an earlier stage must have written; a clear error if it did not."""
        path = self.stage_dir(stage) / filename
        if not path.exists():
            raise StageUnavailableError(
                f"{path}: missing; run `neurrator {stage} --run {self.root}` first"
            )
        return path

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[Path]:
        """Time a stage and record it in the manifest; yields the stage's folder."""
        folder = self.stage_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.update_manifest(stages={name: {"status": "running", "started": datetime.now(UTC).isoformat(timespec="seconds")}})
        try:
            yield folder
        except BaseException as exc:
            self.update_manifest(stages={name: {"status": "failed", "error": str(exc)[:500], "seconds": round(time.perf_counter() - t0, 3)}})
            raise
        self.update_manifest(stages={name: {"status": "done", "seconds": round(time.perf_counter() - t0, 3)}})
