"""What a report shows, as plain typed objects, in page order.

The stage (``neurrator.stages.report``) reads the run directory and the builders of this
package fill these; the HTML renderer (:mod:`neurrator.report.html`) only turns them into
markup. Any part may be absent: ``None`` or an empty list means "not run", and a
:class:`Note` says why.

Page order: :class:`RunSummary` (what ran, stand-in banner, stage strip) → result tables
(:class:`ResultTable`) → key figures → the interactive :class:`Timeline` → analyses
(:class:`Section`) → a collapsed appendix (raw JSON, config, manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: A table cell: text, a number, a flag or nothing (shown as a dash).
Cell = str | int | float | bool | None


@dataclass(frozen=True)
class Note:
    """A message shown in place of, or beside, a part of the page.

    ``level`` is ``"missing"`` (a stage has not run or an artifact is absent), ``"warning"``
    (something ran but is unusable, failed or stale) or ``"info"``.
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
    """A plain rectangular table; ``rows`` are lists of cells in ``columns`` order."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""


# ---- result tables -----------------------------------------------------------------------
@dataclass(frozen=True)
class Estimate:
    """One result cell: a value, its confidence interval if known, or why it is absent.

    Attributes
    ----------
    value : the estimate (``None`` when absent; ``missing`` then says why, e.g. ``"n/a"``).
    low, high : interval bounds (same unit as ``value``), or ``None``.
    unit : ``"score"`` (3 decimals), ``"percent"`` (a fraction shown as %), ``"rank"`` (whole
        numbers) or ``"count"``.
    missing : text shown instead of a value (default a dash).
    flag : a short mark shown after the value, e.g. ``"at chance"`` (its meaning is in the notes).
    """

    value: float | None
    low: float | None = None
    high: float | None = None
    unit: str = "score"
    missing: str = "—"
    flag: str = ""


@dataclass(frozen=True)
class ColumnGroup:
    """Columns sharing a header: one regime (or the paper's numbers for it) and its metrics."""

    label: str
    columns: tuple[str, ...]
    note: str = ""


@dataclass(frozen=True)
class ResultRow:
    """One method (or a reference line: chance, a floor, an oracle).

    ``cells`` follow the table's ``groups`` column by column; ``paper`` its ``paper_groups``.
    ``kind`` is ``"method"`` or ``"reference"`` (shown apart, in italics).
    """

    label: str
    cells: tuple[Estimate, ...]
    paper: tuple[Estimate, ...] = ()
    kind: str = "method"
    note: str = ""


@dataclass(frozen=True)
class ResultTable:
    """Methods as rows, regimes as column groups, with the paper's numbers in their own group.

    Attributes
    ----------
    key : stable anchor name (``"a1"``, ``"zero_shot"``, ...).
    title : caption, e.g. "Table A1 · SBERT by hold-out regime".
    groups : this run's column groups (regime → metrics).
    rows : methods, then reference rows (chance, floors).
    paper_groups : the paper's numbers, labelled apart (never typed: from ``evaluate.paper``).
    paper_source : where those numbers come from (paper, table).
    notes : the budget, definitions, readouts, "quick" and CI method, one line each.
    """

    key: str
    title: str
    groups: tuple[ColumnGroup, ...]
    rows: tuple[ResultRow, ...]
    paper_groups: tuple[ColumnGroup, ...] = ()
    paper_source: str = ""
    notes: tuple[str, ...] = ()
    row_header: str = "method"

    @property
    def n_columns(self) -> int:
        return sum(len(g.columns) for g in self.groups)

    @property
    def n_paper_columns(self) -> int:
        return sum(len(g.columns) for g in self.paper_groups)

    def __post_init__(self) -> None:
        n, n_paper = self.n_columns, self.n_paper_columns
        for row in self.rows:
            if len(row.cells) != n or len(row.paper) not in (0, n_paper):
                raise ValueError(f"{self.key}: row {row.label!r} has {len(row.cells)}/{len(row.paper)} cells, "
                                 f"the columns need {n}/{n_paper}")


# ---- page parts --------------------------------------------------------------------------
@dataclass
class Section:
    """A titled group of figures, tables and notes (one analysis, one evaluation part, ...)."""

    title: str
    anchor: str
    #: One line under the title (e.g. an analysis's headline result).
    subtitle: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Tables shown folded (long per-item outputs that would drown the figures).
    details: list[Table] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.figures or self.tables or self.details)


@dataclass(frozen=True)
class StageLine:
    """One pipeline stage on the first screen: ``status`` as recorded, ``stale`` why it is stale."""

    stage: str
    status: str
    seconds: float | None = None
    error: str | None = None
    stale: str | None = None


@dataclass
class RunSummary:
    """The first screen: what ran, on what, with which stand-ins.

    Attributes
    ----------
    facts : label → value lines ("Data", "Vision space", "Narrator", ...), in order.
    stand_ins : component → description of each offline stand-in (the banner).
    stages : the pipeline's stages with status, time and staleness.
    """

    name: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    stand_ins: dict[str, str] = field(default_factory=dict)
    stages: list[StageLine] = field(default_factory=list)


@dataclass(frozen=True)
class Sprite:
    """Stimulus frames tiled into one image (JPEG) for the timeline.

    Tile ``k`` (row-major, ``columns`` per row, each ``tile_width`` × ``tile_height`` px) shows
    frame ``k * frame_step``.
    """

    image: bytes
    mime: str
    tile_width: int
    tile_height: int
    columns: int
    n_tiles: int
    frame_step: int


@dataclass(frozen=True)
class RasterStrip:
    """The shown units' activity over one whole repeat, as a grayscale PNG (dark = active).

    The image is ``n_bins`` px wide (one px per bin of the dataset's padded time axis) and one
    px tall per unit; ``bands`` are (label, first row, n rows) runs of units of one brain area,
    top to bottom.
    """

    repeat: int
    png: bytes
    n_bins: int
    n_units: int
    bands: tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class TimelineWindow:
    """One narrated test window (frame, repeat), its sentence, references and score.

    ``start_bin`` is the window's first bin on the dataset's padded time axis (the raster's x),
    or ``None`` when no raster is drawn.
    """

    frame: int
    repeat: int | None
    narration: str | None
    references: tuple[str, ...]
    score: float | None
    start_bin: int | None = None


@dataclass
class Timeline:
    """The interactive narrated timeline: a scrubber over the whole stimulus.

    Attributes
    ----------
    n_frames : frames (or images) of the stimulus; the scrubber runs over ``0 … n_frames - 1``.
    frame_rate : Hz for movies (the scrubber shows seconds), ``None`` for image sets.
    windows : one narrated test window per frame that has one (the lowest repeat), frame order.
    sprite : the frames, or ``None`` (no thumbnails).
    rasters : repeat → strip of the shown units' activity, or empty (no rasters).
    window, bin_rate : decoded-window length (bins) and bins per second (for the raster).
    score_label : what ``TimelineWindow.score`` is.
    score_track : PNG, one px per frame, coloured by score (grey: no narrated window).
    """

    n_frames: int = 0
    frame_rate: float | None = None
    windows: list[TimelineWindow] = field(default_factory=list)
    sprite: Sprite | None = None
    rasters: dict[int, RasterStrip] = field(default_factory=dict)
    window: int = 20
    bin_rate: float = 120.0
    score_label: str = "SBERT"
    score_track: bytes | None = None
    notes: list[Note] = field(default_factory=list)


@dataclass(frozen=True)
class RawFile:
    """One run artefact shown verbatim (pretty JSON) in the collapsed appendix."""

    path: str
    text: str


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


@dataclass
class ReportContent:
    """Everything one report shows, in display order."""

    title: str
    summary: RunSummary
    provenance: Provenance
    results: list[ResultTable] = field(default_factory=list)
    #: Notes about the results (a stage not run, a table missing).
    result_notes: list[Note] = field(default_factory=list)
    key_figures: list[Figure] = field(default_factory=list)
    timeline: Timeline = field(default_factory=Timeline)
    analyses: list[Section] = field(default_factory=list)
    analysis_notes: list[Note] = field(default_factory=list)
    appendix: list[RawFile] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    @property
    def n_figures(self) -> int:
        return len(self.key_figures) + sum(len(s.figures) for s in self.analyses)

    @property
    def all_notes(self) -> list[Note]:
        return [*self.notes, *self.result_notes, *self.timeline.notes, *self.analysis_notes,
                *(n for s in self.analyses for n in s.notes)]


def _as_text(value: Any) -> str:
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    return str(value)
