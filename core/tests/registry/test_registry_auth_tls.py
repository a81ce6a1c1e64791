"""htpasswd basic auth (bcrypt ``$2y$`` entries as ``htpasswd -B`` writes them) and TLS."""

from __future__ import annotations

import base64
import hashlib
import http.client
import ssl
import subprocess

import pytest
from pyengine.testing.registry import RegistryClient, running_registry

bcrypt = pytest.importorskip("bcrypt")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def htpasswd_line(user: str, password: str) -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    return f"{user}:{hashed.replace('$2b$', '$2y$', 1)}"  # what `htpasswd -B` writes


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory):
    path = tmp_path_factory.mktemp("auth") / "htpasswd"
    path.write_text(htpasswd_line("alice", "s3cret") + "\n" + htpasswd_line("bob", "hunter2") + "\n")
    return path


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_htpasswd_auth(tmp_path, htpasswd):
    with running_registry(tmp_path / "root", htpasswd=htpasswd) as server:
        anonymous = RegistryClient(server.url, server.root)
        reply = anonymous.request("GET", "/v2/")
        assert reply.status == 401 and reply.error_code == "UNAUTHORIZED"
        assert reply.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert anonymous.request("POST", "/v2/team/x/blobs/uploads/").status == 401
        assert anonymous.open_uploads() == set()

        wrong = RegistryClient(server.url, server.root, auth=basic("alice", "nope"))
        assert wrong.request("GET", "/v2/").status == 401
        stranger = RegistryClient(server.url, server.root, auth=basic("mallory", "s3cret"))
        assert stranger.request("GET", "/v2/").status == 401

        alice = RegistryClient(server.url, server.root, auth=basic("alice", "s3cret"))
        assert alice.request("GET", "/v2/").status == 200
        manifest, digest = alice.push_image("team/x", "v1")
        bob = RegistryClient(server.url, server.root, auth=basic("bob", "hunter2"))
        assert bob.request("GET", f"/v2/team/x/manifests/{digest}").status == 200
        # A right password remembered for alice does not open the door to a wrong one.
        assert wrong.request("GET", "/v2/team/x/manifests/v1").status == 401


def test_tls(tmp_path, tls_pair):
    with running_registry(tmp_path / "root", tls=tls_pair) as server:
        assert server.url.startswith("https://")
        client = RegistryClient(server.url, server.root)
        assert client.request("GET", "/v2/").status == 200
        data = b"over tls" * 1000
        digest = client.push_blob("team/tls", data)
        assert client.request("GET", f"/v2/team/tls/blobs/{digest}").body == data
        assert hashlib.sha256(data).hexdigest() in digest

        # The certificate is the one we gave it.
        verified = ssl.create_default_context(cafile=str(tls_pair[0]))
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=verified, timeout=30)
        connection.request("GET", "/v2/")
        assert connection.getresponse().status == 200
        connection.close()

        # Plain HTTP to a TLS port gets no registry answer.
        plain = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            plain.request("GET", "/v2/")
            plain.getresponse()
        plain.close()


def test_htpasswd_with_an_entry_that_is_not_bcrypt_refuses_to_start(tmp_path):
    path = tmp_path / "htpasswd"
    path.write_text("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")
    with pytest.raises(RuntimeError, match="did not start"):
        with running_registry(tmp_path / "root", htpasswd=path):
            pass
