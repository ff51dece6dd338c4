"""Session manifests: a text file listing many sessions for ``neurrator ingest``.

One session per line; blank lines and ``#`` comments are ignored::

    # local files (relative paths are taken from the manifest's folder)
    /data/allen/session_715093703.nwb
    sessions/session_719161530.nwb
    # DANDI 000021 assets, downloaded into data.download_dir when their turn comes
    dandi:sub-699733573/sub-699733573_ses-715093703.nwb

:func:`session_sources` turns a run's data config (``data.manifest``, ``data.nwb_paths``,
``data.dandi_assets``, or the run's simulated sessions) into :class:`SessionSource` s, which are
resolved to a local file one at a time (:meth:`SessionSource.resolve`), so a sweep over many
sessions downloads and reads one session at a time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from neurrator.core.errors import InputError
from neurrator.data.download import download_session

DANDI_PREFIX = "dandi:"


@dataclass(frozen=True)
class SessionSource:
    """Where one session comes from.

    kind : ``"nwb"`` (a local file) or ``"dandi"`` (an asset path of dandiset 000021).
    location : the file path or the asset path.
    origin : where it was listed (``"manifest.txt:3"``, ``"data.nwb_paths"``, ...), for errors.
    """

    kind: Literal["nwb", "dandi"]
    location: str
    origin: str = ""

    @property
    def label(self) -> str:
        return Path(self.location).name

    def resolve(self, download_dir: str | Path, *, api_url: str | None = None) -> Path:
        """The local file: the path itself, or the DANDI asset downloaded (resumable, checked)."""
        if self.kind == "dandi":
            kwargs = {"api_url": api_url} if api_url else {}
            return download_session("dandi", self.location, download_dir, **kwargs)
        path = Path(self.location)
        if not path.is_file():
            raise InputError(path, f"session file not found (listed in {self.origin})" if self.origin else
                             "session file not found")
        return path


def read_manifest(path: str | Path) -> list[SessionSource]:
    """Parse a manifest file; :class:`InputError` naming the file (and line) for bad entries."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "manifest file not found")
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"unreadable manifest: {exc}") from None
    sources = []
    for number, raw in enumerate(lines, start=1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        origin = f"{path.name}:{number}"
        if entry.startswith(DANDI_PREFIX):
            asset = entry[len(DANDI_PREFIX):].strip()
            if not asset.endswith(".nwb"):
                raise InputError(path, f"line {number}: a DANDI entry names an .nwb asset path, got {asset!r}")
            sources.append(SessionSource("dandi", asset, origin))
        else:
            local = Path(entry).expanduser()
            sources.append(SessionSource("nwb", str(local if local.is_absolute() else path.parent / local), origin))
    if not sources:
        raise InputError(path, "the manifest lists no sessions")
    seen: dict[str, str] = {}
    for s in sources:
        if s.location in seen:
            raise InputError(path, f"{s.origin} repeats the session of {seen[s.location]} ({s.location})")
        seen[s.location] = s.origin
    return sources


def session_sources(data_config, simulate_index: Path | None = None) -> tuple[list[SessionSource], bool]:
    """The sessions a run ingests, in order, and whether they are simulated.

    ``data.source == "nwb"``: ``data.manifest`` entries, then ``data.nwb_paths``, then
    ``data.dandi_assets``. Otherwise the simulated sessions listed in ``simulate_index``
    (``simulate/sessions.json``).
    """
    if data_config.source == "nwb":
        sources = read_manifest(data_config.manifest) if data_config.manifest is not None else []
        sources += [SessionSource("nwb", str(p), "data.nwb_paths") for p in data_config.nwb_paths]
        sources += [SessionSource("dandi", a, "data.dandi_assets") for a in data_config.dandi_assets]
        if not sources:
            raise InputError(None, "data.source is 'nwb' but data.manifest, data.nwb_paths and data.dandi_assets "
                                   "are all empty")
        return sources, False
    if simulate_index is None:
        raise InputError(None, "simulated sessions need the simulate stage's index")
    try:
        entries = json.loads(simulate_index.read_text())["sessions"]
        files = [simulate_index.parent / s["file"] for s in entries]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(simulate_index, f"corrupt session index: {exc}") from None
    return [SessionSource("nwb", str(f), "simulate/sessions.json") for f in files], True
