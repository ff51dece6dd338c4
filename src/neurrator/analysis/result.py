"""What one analysis found, as one typed object with save/load.

Every analysis module's ``run(inputs, config)`` returns an :class:`AnalysisResult`; the
``analyze`` stage saves it into ``analyze/<name>/`` and the report reads the folder.
``docs/analysis_outputs.md`` documents each analysis's tables.

Files
-----
``summary.json``  compact, table-shaped result (what the report shows)
``results.json``  everything (per point, per unit, per feature, ...)
``inputs.json``   what the analysis used: narrator, windows, units, seed, its config, stand-ins
``*.png``         figures
other files       analysis-specific artefacts (e.g. ``sae/`` weights of a trained SAE)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from neurrator.core.errors import InputError
from neurrator.core.io import atomic_write_bytes, atomic_write_json

_JSON_FILES = ("summary.json", "results.json", "inputs.json")


@dataclass
class AnalysisResult:
    """One analysis's tables, figures and the inputs it used.

    Attributes
    ----------
    name : the analysis (``"scaling"``, ``"sae"``, ...).
    summary : compact, JSON-serialisable, table-shaped result.
    results : everything, JSON-serialisable.
    inputs : what it used (narrator, n_windows, n_units, seed, config section, stand-ins).
    figures : PNG bytes by file name (``"scaling.png"``).
    files : other artefacts, bytes by path relative to the analysis folder.
    line : one line for the terminal.
    """

    name: str
    summary: dict
    results: dict
    inputs: dict
    figures: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    line: str = ""

    def save(self, folder: str | Path) -> list[Path]:
        """Write every file into ``folder`` (each atomically); returns their paths."""
        folder = Path(folder)
        paths = [atomic_write_json(folder / "summary.json", {**self.summary, "line": self.line}),
                 atomic_write_json(folder / "results.json", self.results),
                 atomic_write_json(folder / "inputs.json", self.inputs)]
        paths += [atomic_write_bytes(folder / name, data) for name, data in {**self.figures, **self.files}.items()]
        return paths

    @classmethod
    def load(cls, folder: str | Path) -> AnalysisResult:
        """Read what :meth:`save` wrote; :class:`InputError` naming a missing or unreadable file."""
        folder = Path(folder)
        loaded = {}
        for name in _JSON_FILES:
            try:
                loaded[name] = json.loads((folder / name).read_text())
            except FileNotFoundError:
                raise InputError(folder / name, "missing; re-run `neurrator analyze`") from None
            except json.JSONDecodeError as exc:
                raise InputError(folder / name, f"not valid JSON: {exc}") from None
        summary = loaded["summary.json"]
        others = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _JSON_FILES
                        and not p.name.startswith("."))
        return cls(
            name=folder.name, summary={k: v for k, v in summary.items() if k != "line"},
            results=loaded["results.json"], inputs=loaded["inputs.json"],
            figures={p.name: p.read_bytes() for p in others if p.parent == folder and p.suffix == ".png"},
            files={str(p.relative_to(folder)): p.read_bytes() for p in others
                   if not (p.parent == folder and p.suffix == ".png")},
            line=str(summary.get("line", "")),
        )
