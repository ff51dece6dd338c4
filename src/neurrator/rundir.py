"""The run directory: ``runs/<name>/`` holds the resolved config, a manifest and each
stage's artifacts in a sub-folder named after the stage.

Stages read their inputs from here, so any stage can be re-run on its own.

Status and staleness (``neurrator status --run R``)
---------------------------------------------------
The manifest records, per stage: ``status`` (``running`` / ``done`` / ``failed``), ``started``,
``finished``, ``seconds``, ``error``, a run-wide sequence number ``seq`` given when the stage
finished, and ``inputs``: the ``seq`` of every input stage at the time it ran (every earlier
stage in pipeline order but the report, whose outputs no stage reads). A stage is **stale**
when an input stage has since failed, not finished, or finished again (its ``seq`` differs from
the one recorded), so a failed or re-run stage marks every later stage stale. :meth:`RunDir.stage` refuses to start a stage whose input stages
are failed, unfinished or stale, naming the first one to re-run; the report stage alone
reads partial runs (it shows what is stale).

Stand-ins are recorded per stage as well: re-running a stage first withdraws the stand-in
labels it set last time, so a stage re-run with a real backend drops its stand-in label.
"""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import sys
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from neurrator.config import RunConfig
from neurrator.core.errors import InputError, StageUnavailableError, StaleInputError
from neurrator.core.io import atomic_write_json, atomic_write_text

CONFIG_FILE = "config.yaml"
#: Every stage, in pipeline order, with the stages whose outputs it reads (:func:`linear_pipeline`).
Pipeline = Mapping[str, Sequence[str]]
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


def default_run_name(config: RunConfig) -> str:
    """A name for a new run: ``config.name`` for simulated data, else one naming the sessions.

    >>> from neurrator.config import RunConfig
    >>> default_run_name(RunConfig().with_overrides({"data.source": "nwb",
    ...     "data.nwb_paths": ["/data/session_715093703.nwb"]}))
    'session_715093703'
    """
    data = config.data
    if data.source != "nwb":
        return config.name
    stems = [Path(p).stem for p in [*data.nwb_paths, *data.dandi_assets]]
    if not stems:
        return config.name
    return stems[0] if len(stems) == 1 else f"{stems[0]}+{len(stems) - 1}"


class RunDir:
    """A run directory.

    >>> run = RunDir.create("runs/demo", RunConfig())   # doctest: +SKIP
    >>> run.stage_dir("train")                          # doctest: +SKIP
    PosixPath('runs/demo/train')
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._current_stage: str | None = None

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
        """Record that ``component`` (e.g. ``"vision_space"``) is an offline stand-in.

        Inside :meth:`stage` the label belongs to that stage and is withdrawn when it re-runs.
        """
        self.update_manifest(stand_ins={component: description})
        if self._current_stage is not None:
            manifest = self.manifest()
            record = manifest["stages"].setdefault(self._current_stage, {})
            record["stand_ins"] = sorted({*record.get("stand_ins", []), component})
            atomic_write_json(self.root / MANIFEST_FILE, manifest)

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

    # ---- stages: status and staleness -----------------------------------------------------
    def statuses(self, pipeline: Pipeline) -> list[StageStatus]:
        """Every stage of ``pipeline`` (then any other recorded stage) with its status and staleness."""
        return stage_statuses(self.manifest(), pipeline)

    def check_inputs(self, name: str, pipeline: Pipeline) -> None:
        """Raise :class:`StaleInputError` if an input stage of ``name`` failed, did not finish or
        is stale; the message names the first such stage, the one to re-run."""
        inputs = set(pipeline.get(name, ()))
        for status in stage_statuses(self.manifest(), pipeline):
            if status.stage in inputs and (status.status in ("failed", "running") or status.stale_because):
                raise StaleInputError(
                    f"{self.root}: cannot run {name}: its input stage {status.stage} {status.problem}; "
                    f"re-run `neurrator {status.stage} --run {self.root}` first"
                )

    @contextlib.contextmanager
    def stage(self, name: str, pipeline: Pipeline | None = None, *, check_inputs: bool = True) -> Iterator[Path]:
        """Run stage ``name``: check its inputs, time it and record it in the manifest.

        Parameters
        ----------
        pipeline : every stage in pipeline order → the stages whose outputs it reads
            (:func:`linear_pipeline`); ``None``: a stage without inputs.
        check_inputs : refuse to start on failed, unfinished or stale input stages.

        Yields the stage's folder. A failure is recorded (and re-raised); the stage's earlier
        outputs then count as stale for every later stage, which refuses to use them.
        """
        pipeline = pipeline or {}
        if check_inputs:
            self.check_inputs(name, pipeline)
        folder = self.stage_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = self.manifest()
        stages = manifest.setdefault("stages", {})
        previous = stages.get(name) if isinstance(stages.get(name), dict) else {}
        stand_ins = manifest.get("stand_ins") if isinstance(manifest.get("stand_ins"), dict) else {}
        for component in previous.get("stand_ins", []):  # this run of the stage sets its own
            stand_ins.pop(component, None)
        inputs = {s: stages[s]["seq"] for s in pipeline.get(name, ())
                  if isinstance(stages.get(s), dict) and stages[s].get("status") == "done" and "seq" in stages[s]}
        stages[name] = {"status": "running", "started": _now(), "inputs": inputs}
        manifest["stand_ins"] = stand_ins
        atomic_write_json(self.root / MANIFEST_FILE, manifest)

        t0 = time.perf_counter()
        self._current_stage = name
        try:
            yield folder
        except BaseException as exc:
            self._finish(name, "failed", time.perf_counter() - t0, error=str(exc)[:500] or type(exc).__name__)
            raise
        finally:
            self._current_stage = None
        self._finish(name, "done", time.perf_counter() - t0)

    def _finish(self, name: str, status: str, seconds: float, *, error: str | None = None) -> None:
        manifest = self.manifest()
        record = manifest.setdefault("stages", {}).setdefault(name, {})
        record.update(status=status, finished=_now(), seconds=round(seconds, 3))
        if error is not None:
            record["error"] = error
        else:  # the run-wide sequence number later stages record as this stage's output version
            manifest["seq"] = record["seq"] = int(manifest.get("seq", 0)) + 1
        atomic_write_json(self.root / MANIFEST_FILE, manifest)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class StageStatus:
    """One stage as the manifest records it.

    Attributes
    ----------
    status : ``"done"``, ``"failed"``, ``"running"`` (started, never finished) or ``"not run"``.
    stale_because : why a stage's outputs no longer match its inputs (``None`` if fresh or not run).
    """

    stage: str
    status: str
    seconds: float | None = None
    finished: str | None = None
    error: str | None = None
    stale_because: str | None = None

    @property
    def problem(self) -> str:
        """What is wrong with this stage as an input of a later one, in words."""
        if self.status == "failed":
            return f"failed ({self.error or 'no message recorded'})"
        if self.status == "running":
            return "started but did not finish"
        return f"is stale ({self.stale_because})"


def linear_pipeline(order: Sequence[str], *, unread: Collection[str] = ()) -> Pipeline:
    """Each stage of ``order`` reads every earlier stage's outputs, except those of ``unread``
    stages (whose outputs no stage reads, e.g. the report).

    >>> linear_pipeline(["ingest", "embed", "report", "sweep"], unread={"report"})
    {'ingest': (), 'embed': ('ingest',), 'report': ('ingest', 'embed'), 'sweep': ('ingest', 'embed')}
    """
    return {name: tuple(s for s in order[:i] if s not in unread) for i, name in enumerate(order)}


def stage_statuses(manifest: dict[str, Any], pipeline: Pipeline) -> list[StageStatus]:
    """Status and staleness of each stage of ``pipeline``, then of any other recorded stage.

    A done stage is stale when one of its input stages failed, did not finish, or finished again
    after it (its ``seq`` differs from the one this stage recorded as input).
    """
    recorded = manifest.get("stages") if isinstance(manifest.get("stages"), dict) else {}
    names = [*pipeline, *(s for s in recorded if s not in pipeline)]
    out: list[StageStatus] = []
    for name in names:
        rec = recorded.get(name)
        if not isinstance(rec, dict):
            out.append(StageStatus(name, "not run"))
            continue
        status = str(rec.get("status", "unknown"))
        stale = _stale_because(rec, pipeline.get(name, ()), recorded) if status == "done" else None
        out.append(StageStatus(name, status, rec.get("seconds"), rec.get("finished"), rec.get("error"), stale))
    return out


def _stale_because(rec: dict[str, Any], inputs_of: Sequence[str], recorded: dict[str, Any]) -> str | None:
    inputs = rec.get("inputs")
    for name in inputs_of:
        other = recorded.get(name)
        if not isinstance(other, dict):
            continue
        if other.get("status") == "failed":
            return f"{name} failed after it ran"
        if other.get("status") != "done":
            return f"{name} started again and did not finish"
        if isinstance(inputs, dict) and inputs.get(name) != other.get("seq"):
            return f"{name} re-ran after it" if name in inputs else f"{name} ran after it"
    return None


def status_table(statuses: Sequence[StageStatus]) -> str:
    """A plain-text table: stage, status, seconds, finished, inputs (fresh / stale: why)."""
    rows = [("stage", "status", "seconds", "finished", "inputs")]
    for s in statuses:
        if s.status == "not run":
            inputs = "—"
        elif s.status == "done":
            inputs = f"STALE: {s.stale_because}" if s.stale_because else "fresh"
        else:
            inputs = f"— ({s.error})" if s.error else "—"
        seconds = "—" if s.seconds is None else f"{float(s.seconds):.1f}"
        rows.append((s.stage, s.status, seconds, s.finished or "—", inputs))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows)
