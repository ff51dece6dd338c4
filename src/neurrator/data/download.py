"""Fetch session NWB files from DANDI (dandiset 000021) or the Allen warehouse into a cache.

Downloads go to ``<name>.part`` beside the target and resume with an HTTP ``Range`` request
after an interruption. The finished file is checked against the expected size and SHA-256
(when known) and only then renamed into place, so the cache never holds a partial session.

>>> path = download_session("dandi", "sub-699733573/sub-699733573_ses-715093703.nwb",
...                         cache_dir=".neurrator-cache/sessions")          # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from neurrator.core.errors import InputError

DANDI_API = "https://api.dandiarchive.org/api"
DANDISET = "000021"
ALLEN_WAREHOUSE = "https://api.brain-map.org"
CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """Where to get a file and what it must look like once downloaded."""

    url: str
    name: str
    size: int | None = None
    sha256: str | None = None


def dandi_asset(path: str, *, api_url: str = DANDI_API, dandiset: str = DANDISET, version: str = "draft") -> RemoteFile:
    """Resolve an asset path of the dandiset (e.g. ``sub-…/sub-…_ses-….nwb``) to URL, size, SHA-256."""
    query = urllib.parse.urlencode({"path": path})
    listing = _get_json(f"{api_url}/dandisets/{dandiset}/versions/{version}/assets/?{query}")
    matches = [a for a in listing.get("results", []) if a.get("path") == path]
    if not matches:
        raise InputError(None, f"DANDI {dandiset} has no asset {path!r}")
    asset = matches[0]
    meta = _get_json(f"{api_url}/dandisets/{dandiset}/versions/{version}/assets/{asset['asset_id']}/")
    digest = meta.get("digest", {}) if isinstance(meta, dict) else {}
    return RemoteFile(
        url=f"{api_url}/assets/{asset['asset_id']}/download/",
        name=Path(path).name,
        size=int(asset["size"]) if asset.get("size") is not None else None,
        sha256=digest.get("dandi:sha2-256"),
    )


def allen_warehouse_file(well_known_file_id: int, name: str, *, base_url: str = ALLEN_WAREHOUSE,
                         size: int | None = None, sha256: str | None = None) -> RemoteFile:
    """A session file of the Allen warehouse (the ``well_known_file`` ids AllenSDK's cache uses)."""
    return RemoteFile(f"{base_url}/api/v2/well_known_file_download/{int(well_known_file_id)}", name, size, sha256)


def download_session(source: str, identifier: str | int, cache_dir: str | Path, **kwargs) -> Path:
    """Download one session into ``cache_dir`` (if not there yet) and return its path.

    ``source`` is ``"dandi"`` (``identifier`` = asset path) or ``"allen"`` (``identifier`` =
    well-known-file id, ``name=`` required). Extra keyword arguments go to the resolvers
    (``api_url``, ``base_url``, ``size``, ``sha256``).
    """
    if source == "dandi":
        remote = dandi_asset(str(identifier), **kwargs)
    elif source == "allen":
        name = kwargs.pop("name", f"session_{identifier}.nwb")
        remote = allen_warehouse_file(int(identifier), name, **kwargs)
    else:
        raise InputError(None, f"unknown download source {source!r}; use 'dandi' or 'allen'")
    return fetch(remote, Path(cache_dir) / remote.name)


def fetch(remote: RemoteFile, dest: str | Path, *, timeout: float = 60.0) -> Path:
    """Download ``remote`` to ``dest`` with resume; verify size and SHA-256 before renaming."""
    dest = Path(dest)
    if dest.is_file() and _matches(dest, remote):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if remote.size is not None and have > remote.size:
        part.unlink()
        have = 0
    if remote.size is None or have < remote.size:
        request = urllib.request.Request(remote.url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                resumed = have > 0 and response.status == 206
                with open(part, "ab" if resumed else "wb") as out:
                    while block := response.read(CHUNK):
                        out.write(block)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:  # 416: nothing left to send, the part file is complete
                raise InputError(None, f"download of {remote.url} failed: HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise InputError(part, f"download of {remote.url} interrupted ({exc}); run again to resume") from None
    if not _matches(part, remote):
        size = part.stat().st_size
        part.unlink()
        raise InputError(dest, f"downloaded file does not match the expected size/checksum ({size} bytes; expected "
                               f"{remote.size} bytes, sha256 {remote.sha256})")
    os.replace(part, dest)
    return dest


def _matches(path: Path, remote: RemoteFile) -> bool:
    if remote.size is not None and path.stat().st_size != remote.size:
        return False
    if remote.sha256 is not None:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(CHUNK):
                h.update(block)
        return h.hexdigest() == remote.sha256
    return True


def _get_json(url: str, timeout: float = 30.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
        raise InputError(None, f"could not query {url}: {exc}") from None
