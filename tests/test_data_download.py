"""Download with resume and size/checksum checks, against a local HTTP server only."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from typing import ClassVar

import pytest

from neurrator.core.errors import InputError
from neurrator.data.download import RemoteFile, dandi_asset, download_session, fetch

PAYLOAD = bytes(range(256)) * 4000  # ~1 MB fixture "session"
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves the payload with Range support and a minimal DANDI-like JSON API."""

    requests: ClassVar[list[dict]] = []

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        _Handler.requests.append({"path": self.path, "range": self.headers.get("Range")})
        if self.path.startswith("/api/dandisets/000021/versions/draft/assets/?"):
            return self._json({"results": [{"asset_id": "abc", "path": "sub-1/sub-1_ses-2.nwb", "size": len(PAYLOAD)}]})
        if self.path == "/api/dandisets/000021/versions/draft/assets/abc/":
            return self._json({"digest": {"dandi:sha2-256": SHA}})
        if self.path == "/api/assets/abc/download/":
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
            body = PAYLOAD[start:]
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return None
        self.send_error(404)
        return None

    def _json(self, obj):
        body = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    _Handler.requests.clear()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/api"
    httpd.shutdown()
    httpd.server_close()


def test_dandi_download_resumes_and_verifies(server, tmp_path):
    remote = dandi_asset("sub-1/sub-1_ses-2.nwb", api_url=server)
    assert remote.size == len(PAYLOAD) and remote.sha256 == SHA
    part = tmp_path / "sub-1_ses-2.nwb.part"
    part.write_bytes(PAYLOAD[:300_000])  # an interrupted earlier download
    path = download_session("dandi", "sub-1/sub-1_ses-2.nwb", tmp_path, api_url=server)
    assert path.read_bytes() == PAYLOAD and not part.exists()
    assert _Handler.requests[-1]["range"] == "bytes=300000-"
    n = len(_Handler.requests)
    assert download_session("dandi", "sub-1/sub-1_ses-2.nwb", tmp_path, api_url=server) == path
    assert all(r["path"] != "/api/assets/abc/download/" for r in _Handler.requests[n:])  # cached


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    bad = RemoteFile(url=f"{server}/assets/abc/download/", name="x.nwb", size=len(PAYLOAD), sha256="0" * 64)
    with pytest.raises(InputError, match="checksum"):
        fetch(bad, tmp_path / "x.nwb")
    assert not list(tmp_path.iterdir())


def test_unknown_asset_and_http_errors(server, tmp_path):
    with pytest.raises(InputError, match="no asset"):
        dandi_asset("sub-9/none.nwb", api_url=server)
    with pytest.raises(InputError, match="HTTP 404"):
        fetch(RemoteFile(url=f"{server}/missing", name="m.nwb"), tmp_path / "m.nwb")


def test_ingest_downloads_configured_dandi_assets(server, tmp_path):
    from neurrator.config import RunConfig
    from neurrator.data.manifest import session_sources

    config = RunConfig().with_overrides({
        "data.source": "nwb", "data.dandi_assets": ["sub-1/sub-1_ses-2.nwb"], "data.dandi_api_url": server,
        "data.download_dir": str(tmp_path / "cache"),
    })
    sources, simulated = session_sources(config.data)
    assert not simulated and [s.kind for s in sources] == ["dandi"]
    paths = [s.resolve(config.data.download_dir, api_url=server) for s in sources]  # what ingest does, in turn
    assert paths == [tmp_path / "cache" / "sub-1_ses-2.nwb"]
    assert paths[0].read_bytes() == PAYLOAD
