"""Layer and manifest formats a pull must take, through the reference registry: OCI manifests with
zstd, gzip and uncompressed layers (one image of three layers) and Docker schema2 (covered by the
interop tests)."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest
from pyengine.distribution.manifests import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from pyengine.distribution.registry import RegistryClient
from pyengine.testing.reference_registry import reference_registry, registry_available

zstandard = pytest.importorskip("zstandard")
pytestmark = pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed")


def _file_layer(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


async def _push_oci_image(address: str, path: str, busybox_tar: bytes) -> None:
    plain = [
        busybox_tar,
        _file_layer("etc/zstd.txt", "zstd layer\n"),
        _file_layer("etc/plain.txt", "plain\n"),
    ]
    blobs = [
        (gzip.compress(plain[0], compresslevel=1), OCI_LAYER_GZIP),
        (zstandard.ZstdCompressor().compress(plain[1]), OCI_LAYER_ZSTD),
        (plain[2], OCI_LAYER_TAR),
    ]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Cmd": ["sh"]},
            "rootfs": {
                "type": "layers",
                "diff_ids": ["sha256:" + hashlib.sha256(p).hexdigest() for p in plain],
            },
        }
    ).encode()
    async with RegistryClient(address, path, push=True) as client:
        await client.login()
        layers = []
        for data, media_type in blobs:
            layers.append(
                {"mediaType": media_type, "digest": await client.upload_bytes(data), "size": len(data)}
            )
        config_digest = await client.upload_bytes(config)
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
            "layers": layers,
        }
        await client.put_manifest("1", json.dumps(manifest).encode(), OCI_MANIFEST)


async def _manifests(address: str, *paths: str) -> list[dict]:
    found = []
    for path in paths:
        async with RegistryClient(address, path) as client:
            await client.login()
            found.append(json.loads((await client.get_manifest("1"))[0]))
    return found


def test_oci_image_with_zstd_gzip_and_plain_layers(cli, busybox_tar):
    with reference_registry() as registry:
        path = f"formats/oci-{uuid.uuid4().hex[:6]}"
        asyncio.run(_push_oci_image(registry.address, path, Path(busybox_tar).read_bytes()))
        ref = f"{registry.address}/{path}:1"
        pulled = cli("pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        run = cli("run", "--rm", ref, "cat", "/etc/zstd.txt", "/etc/plain.txt")
        assert run.stdout == "zstd layer\nplain\n", run.stderr
        # pushed elsewhere: compressed layers go out as they came; the plain one is gzipped
        other = f"{registry.address}/formats/copy:1"
        cli("tag", ref, other)
        pushed = cli("push", other)
        assert pushed.returncode == 0, pushed.stderr
        source, copy = asyncio.run(_manifests(registry.address, path, "formats/copy"))
        assert [x["digest"] for x in copy["layers"][:2]] == [x["digest"] for x in source["layers"][:2]]
        assert [x["mediaType"] for x in copy["layers"]][1] == OCI_LAYER_ZSTD
        assert copy["mediaType"] == OCI_MANIFEST and copy["layers"][2]["mediaType"] == OCI_LAYER_GZIP
        cli("rmi", ref, other)


async def _chunked_round_trip(address: str, data: bytes) -> tuple[bytes, bytes]:
    from pyengine.state.blobs import sha256_digest

    digest = sha256_digest(data)

    async def pieces():
        for start in range(0, len(data), 100_000):
            yield data[start : start + 100_000]

    async with RegistryClient(address, "formats/chunked", push=True) as client:
        await client.login()
        await client.upload_blob(digest, len(data), pieces, chunk_size=1 << 20)
        streamed = data[::-1]
        await client.upload_blob(sha256_digest(streamed), len(streamed), lambda: _once(streamed))
        got = await client.read_blob(digest, len(data))
        got_streamed = await client.read_blob(sha256_digest(streamed), len(streamed))
    return got, got_streamed


async def _once(data: bytes):
    yield data


def test_chunked_and_streamed_blob_uploads(tmp_path):
    import os

    data = os.urandom((3 << 20) + 12345)  # three full chunks and a short one
    with reference_registry() as registry:
        got, got_streamed = asyncio.run(_chunked_round_trip(registry.address, data))
    assert got == data and got_streamed == data[::-1]
