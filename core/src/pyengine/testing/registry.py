"""Harnesses for the registry server: start one on loopback, build OCI layouts to push into it.

    with running_registry(tmp_path / "root") as registry:
        subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", "oci:layout:1",
                        f"docker://{registry.address}/team/bb:1"], check=True)

The server runs as its own process (``python -m pyengine.registry serve``) on a free port of
127.0.0.1, and is stopped (SIGTERM, then SIGKILL) on exit even when the body fails.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"


@dataclass(frozen=True)
class RegistryProcess:
    url: str  # e.g. http://127.0.0.1:40123
    root: Path
    process: subprocess.Popen
    log_path: Path

    @property
    def address(self) -> str:
        """host:port, as image references and skopeo's docker:// transport spell it."""
        return self.url.split("://", 1)[1]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return self.json()["errors"][0]["code"]


class RegistryClient:
    """``client.request(method, path, body, headers)`` -> Reply, over a fresh connection each time.

    ``root`` is the server's --root, for tests that look at what is stored. TLS is not verified.
    """

    def __init__(self, url: str, root: Path, auth: str | None = None) -> None:
        self.url = url
        self.root = root
        self.tls = url.startswith("https://")
        self.host, port = url.split("://", 1)[1].rsplit(":", 1)
        self.port = int(port)
        self.auth = auth

    def connection(self) -> http.client.HTTPConnection:
        if self.tls:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=60, context=ssl._create_unverified_context()
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=60)

    def request(
        self,
        method: str,
        path: str,
        body=None,
        headers: dict[str, str] | None = None,
        *,
        chunked: bool = False,
    ) -> Reply:
        headers = dict(headers or {})
        if self.auth is not None:
            headers.setdefault("Authorization", self.auth)
        connection = self.connection()
        try:
            connection.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            response = connection.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            connection.close()

    # -- helpers for building content ---------------------------------------------------------------
    def push_blob(self, name: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        reply = self.request(
            "POST",
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )
        if reply.status != 201:
            raise RuntimeError(f"blob push answered {reply.status}: {reply.body[:500]!r}")
        return digest

    def push_manifest(
        self, name: str, reference: str, document: dict | bytes, media_type: str = OCI_MANIFEST
    ) -> Reply:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        return self.request("PUT", f"/v2/{name}/manifests/{reference}", body, {"Content-Type": media_type})

    def push_image(self, name: str, tag: str, *, layer: bytes | None = None, **extra) -> tuple[dict, str]:
        """Push a config, one layer and a manifest tagged ``tag``; return (manifest, its digest)."""
        layer = layer if layer is not None else os.urandom(1000)
        config = json.dumps(
            {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "tag": tag}
        ).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": self.push_blob(name, config), "size": len(config)},
            "layers": [
                {"mediaType": OCI_LAYER_GZIP, "digest": self.push_blob(name, layer), "size": len(layer)}
            ],
            **extra,
        }
        reply = self.push_manifest(name, tag, manifest)
        if reply.status != 201:
            raise RuntimeError(f"manifest push answered {reply.status}: {reply.body[:500]!r}")
        return manifest, reply.headers["Docker-Content-Digest"]

    def stored_blobs(self) -> set[str]:
        """Names of every file in the blob store (temporaries included)."""
        return {p.name for p in (self.root / "blobs" / "sha256").iterdir()}

    def open_uploads(self) -> set[str]:
        return {p.name for p in (self.root / "uploads").iterdir()}

    def tags(self, name: str) -> list[str]:
        reply = self.request("GET", f"/v2/{name}/tags/list")
        return reply.json()["tags"] if reply.status == 200 else []


@contextmanager
def running_registry(
    root: str | os.PathLike,
    *,
    htpasswd: str | os.PathLike | None = None,
    tls: tuple[str | os.PathLike, str | os.PathLike] | None = None,
    command: Sequence[str] = (sys.executable, "-m", "pyengine.registry"),
    start_timeout: float = 30.0,
) -> Iterator[RegistryProcess]:
    """Start ``registry serve`` on 127.0.0.1 with a free port; yield it once it listens."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    log_path = root.parent / f"{root.name}.log"
    args = [*command, "serve", "--addr", "127.0.0.1:0", "--root", str(root)]
    if htpasswd is not None:
        args += ["--htpasswd", os.fspath(htpasswd)]
    if tls is not None:
        args += ["--tls-cert", os.fspath(tls[0]), "--tls-key", os.fspath(tls[1])]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    try:
        line = _read_first_line(process, start_timeout)
        if not line.startswith("listening on "):
            raise RuntimeError(
                f"registry did not start: {line!r}\n{log_path.read_text(errors='replace')[-2000:]}"
            )
        yield RegistryProcess(line.split()[-1], root, process, log_path)
    finally:
        stop_process(process)


def _read_first_line(process: subprocess.Popen, timeout: float) -> str:
    import selectors

    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if not selector.select(timeout):
        return ""
    return process.stdout.readline().decode(errors="replace").strip()


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        process.stdout.close()


def make_oci_layout(
    dest: str | os.PathLike, rootfs_tar: str | os.PathLike, tag: str = "latest", cmd: Sequence[str] = ("sh",)
) -> dict:
    """Write an OCI image layout at ``dest`` holding one image (one gzip layer of ``rootfs_tar``).

    Returns the image's manifest document (with ``"_digest"`` added: the manifest's digest).
    """
    dest = Path(dest)
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> tuple[str, int]:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}", len(data)

    raw = Path(rootfs_tar).read_bytes()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    layer_digest, layer_size = put(gzip.compress(raw, compresslevel=1, mtime=0))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Cmd": list(cmd),
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "pyengine.testing.registry.make_oci_layout"}],
    }
    config_digest, config_size = put(json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = put(json.dumps(manifest).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (dest / "index.json").write_text(json.dumps(index))
    (dest / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    return {**manifest, "_digest": manifest_digest}


def skopeo_available() -> bool:
    return shutil.which("skopeo") is not None
