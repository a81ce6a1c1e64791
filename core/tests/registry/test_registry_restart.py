"""The registry's state on disk outlives the server: uploads resume after a restart, abandoned ones
are purged, and `pyengine registry serve` (the main CLI) serves the same root."""

from __future__ import annotations

import hashlib
import os
import sys
import time

from pyengine.testing.registry import RegistryClient, running_registry


def test_upload_resumes_after_restart_and_stale_uploads_are_purged(tmp_path):
    root = tmp_path / "root"
    with running_registry(root) as server:
        client = RegistryClient(server.url, root)
        resumed = client.request("POST", "/v2/team/resume/blobs/uploads/").headers["Location"]
        assert client.request("PATCH", resumed, b"a" * 1000, {"Content-Range": "0-999"}).status == 202
        stale = client.request("POST", "/v2/team/resume/blobs/uploads/").headers["Docker-Upload-UUID"]
    week_and_a_day = time.time() - 8 * 24 * 3600
    os.utime(root / "uploads" / stale / "data", (week_and_a_day, week_and_a_day))

    # Started through the main CLI this time.
    with running_registry(root, command=(sys.executable, "-m", "pyengine", "registry")) as server:
        client = RegistryClient(server.url, root)
        assert stale not in client.open_uploads()
        status = client.request("GET", resumed)
        assert status.status == 204 and status.headers["Range"] == "0-999"
        assert client.request("PATCH", resumed, b"b" * 500, {"Content-Range": "1000-1499"}).status == 202
        digest = "sha256:" + hashlib.sha256(b"a" * 1000 + b"b" * 500).hexdigest()
        assert client.request("PUT", f"{resumed}?digest={digest}").status == 201
        assert client.request("GET", f"/v2/team/resume/blobs/{digest}").body == b"a" * 1000 + b"b" * 500
        assert client.open_uploads() == set()
