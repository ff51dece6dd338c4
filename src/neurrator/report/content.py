"""What a report shows, as plain typed objects.

The stage (``neurrator.stages.report``) reads the run directory and fills these; the HTML
renderer (:mod:`neurrator.report.html`) only turns them into markup. Any part may be absent:
``None`` or an empty list means "not run", and a :class:`Note` says why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A table cell: text, a number, a flag or nothing (shown as a dash).
Cell = str | int | float | bool | None


@dataclass(frozen=True)
class Note:
    """A message shown in place of, or beside, a section's content.

    ``level`` is ``"missing"`` (a stage has not run or an artifact is absent), ``"warning"``
    (something was present but unusable) or ``"info"``.
    """

    text: str
    level: str = "missing"


@dataclass(frozen=True)
class Figure:
    """One PNG figure. ``png`` holds the encoded file; ``source`` is where it came from."""

    title: str
    png: bytes
    caption: str = ""
    source: str = ""


@dataclass(frozen=True)
class Table:
    """A rectangular table; ``rows`` are lists of cells in ``columns`` order."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""


@dataclass
class Section:
    """A titled group of tables, figures and notes (one evaluation file, one analysis, ...)."""

    title: str
    anchor: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Tables shown folded (long per-item outputs that would drown the figures).
    details: list[Table] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.figures or self.tables or self.details)


@dataclass(frozen=True)
class TimelineEntry:
    """One test window of the narrated timeline.

    Attributes
    ----------
    frame : stimulus frame the window is centred on.
    repeat : stimulus repeat the window was recorded on (``None`` if unknown).
    narration : the decoded sentence (``None`` if narrate has not run).
    references : reference caption(s) of the true frame.
    score : SBERT cosine of the narration against the reference(s) (``None`` if not evaluated).
    thumbnail : PNG of the stimulus frame, or ``None``.
    raster : PNG of the units' activity around the window, or ``None``.
    """

    frame: int
    repeat: int | None
    narration: str | None
    references: list[str]
    score: float | None
    thumbnail: bytes | None = None
    raster: bytes | None = None


@dataclass
class Timeline:
    """The narrated timeline: entries in frame order, what the score column means, notes."""

    entries: list[TimelineEntry] = field(default_factory=list)
    score_label: str = "SBERT"
    notes: list[Note] = field(default_factory=list)


@dataclass
class Provenance:
    """Where the results came from.

    Attributes
    ----------
    config_yaml : the resolved run config, verbatim.
    manifest : the run manifest (versions, seed, git commit, stage timings, stand-ins, ...).
    """

    config_yaml: str | None
    manifest: dict[str, Any]

    @property
    def stand_ins(self) -> dict[str, str]:
        raw = self.manifest.get("stand_ins") or {}
        if not isinstance(raw, dict):
            return {"stand_ins": str(raw)}
        return {str(k): _as_text(v) for k, v in raw.items()}

    @property
    def stages(self) -> dict[str, dict[str, Any]]:
        raw = self.manifest.get("stages") or {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): v if isinstance(v, dict) else {"status": str(v)} for k, v in raw.items()}


@dataclass
class ReportContent:
    """Everything one report shows, in display order."""

    title: str
    provenance: Provenance
    evaluation: list[Section] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    analyses: list[Section] = field(default_factory=list)
    #: Notes about the analyses as a whole (e.g. the analyze stage has not run).
    analysis_notes: list[Note] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def n_figures(self) -> int:
        return sum(len(s.figures) for s in [*self.evaluation, *self.analyses])


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)
