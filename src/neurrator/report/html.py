"""Render a :class:`~neurrator.report.content.ReportContent` to one self-contained HTML page.

- Jinja2 with autoescaping on for every value: narrations, captions, config text, file names
  and error messages all come from outside and may hold markup.
- Images are inlined as data URIs and styles are inline; nothing is fetched.
- The one script (``templates/timeline.js``, our own constant) runs because the page's
  Content-Security-Policy allows exactly its SHA-256; any other script, injected or not, is
  blocked. Its data sits in a ``<script type="application/json">`` block (never executed)
  with ``<``, ``>`` and ``&`` written as JSON ``\\u`` escapes, so no text can close the block,
  and the script puts every text into the page with ``textContent``, never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from neurrator.report.content import Estimate, ReportContent, Timeline
from neurrator.report.figures import data_uri
from neurrator.report.tables import format_cell, format_estimate

#: Pixels per bin and per unit in the timeline's raster view.
BIN_PX, UNIT_PX = 4, 3


@cache
def timeline_script() -> str:
    """The timeline's JavaScript, verbatim (hashed into the page's CSP)."""
    return resources.files("neurrator.report").joinpath("templates", "timeline.js").read_text(encoding="utf-8")


def csp_hash(script: str) -> str:
    """``'sha256-…'`` source expression allowing exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii") + "'"


def json_for_html(obj: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` (and the line
    separators JavaScript once treated as newlines) become ``\\u`` escapes, so no value can end
    the block or open a comment; ``JSON.parse`` restores them exactly."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escape)
    return text


def timeline_data(timeline: Timeline, *, context_bins: int) -> dict[str, Any]:
    """What the timeline script needs, as plain JSON (windows as compact arrays).

    ``windows``: ``[frame, repeat, narration, [references], score, start_bin]`` in frame order.
    """
    sprite = timeline.sprite
    return {
        "n_frames": timeline.n_frames,
        "frame_rate": timeline.frame_rate,
        "window": timeline.window,
        "context": context_bins,
        "bin_px": BIN_PX,
        "sprite": None if sprite is None else {"tw": sprite.tile_width, "th": sprite.tile_height,
                                               "columns": sprite.columns, "n": sprite.n_tiles, "step": sprite.frame_step},
        "windows": [[w.frame, w.repeat, w.narration, list(w.references),
                     None if w.score is None else round(w.score, 4), w.start_bin] for w in timeline.windows],
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("neurrator.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = format_cell
    env.filters["estimate"] = format_estimate
    env.filters["data_uri"] = data_uri
    env.tests["estimate"] = lambda value: isinstance(value, Estimate)
    return env


def render_report(content: ReportContent, *, context_bins: int = 40) -> str:
    """The report page as an HTML string.

    Parameters
    ----------
    content : everything to show; absent parts carry notes and render as "not run".
    context_bins : bins of activity shown on each side of the decoded window in the raster.
    """
    script = timeline_script()
    timeline = content.timeline
    return _environment().get_template("report.html.j2").render(
        report=content,
        timeline=timeline,
        timeline_json=json_for_html(timeline_data(timeline, context_bins=context_bins)),
        script=script,
        csp=("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
             f"script-src {csp_hash(script)}; base-uri 'none'; form-action 'none'"),
        bin_px=BIN_PX,
        unit_px=UNIT_PX,
        raster_view_bins=2 * context_bins + timeline.window,
        first=timeline.windows[0] if timeline.windows else None,
    )
