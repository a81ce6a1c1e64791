"""A container's files from outside: diff, commit, export and cp through our CLI, the docker CLI,
the docker SDK and the raw API, including a container racing to swap directories for symlinks."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import socket
import tarfile
import time
import uuid
from pathlib import Path

import pytest


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _raw(daemon, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    """One request on a fresh connection; the caller reads the response (headers included)."""
    connection = http.client.HTTPConnection("localhost", timeout=60)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(daemon.socket)
    connection.sock = sock
    headers = {"Content-Type": "application/x-tar"} if body is not None else {}
    connection.request(method, path, body=body, headers=headers)
    return connection.getresponse()


def _tar(*entries: tuple[str, bytes | str | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            elif isinstance(data, str):  # a symlink to data
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def changed(cli, busybox):
    """A stopped container that added /new, deleted /etc/group and made /d/e/f."""
    name = _name("changed")
    result = cli("run", "--name", name, busybox, "sh", "-c",
                 "echo hi > /new; rm /etc/group; mkdir -p /d/e; echo x > /d/e/f")
    assert result.returncode == 0, result.stderr
    yield name
    cli("rm", "-f", name)


@pytest.fixture
def running(cli, busybox):
    name = _name("running")
    script = ("echo live > /live; while [ ! -f /tree/sub/leaf ]; do sleep 0.1; done; "
              "cat /tmp/file /tree/sub/leaf; sleep 300")
    result = cli("run", "-d", "--name", name, busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    yield name
    cli("rm", "-f", name)


def test_diff_lists_what_the_container_changed(cli, changed):
    result = cli("diff", changed)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["A /d", "A /d/e", "A /d/e/f", "C /etc", "D /etc/group", "A /new"]


def test_commit_makes_an_image_that_runs_with_the_changes(cli, changed):
    image = _name("committed")
    result = cli("commit", "-m", "my message", "-a", "me", "-c", "ENV FROM_COMMIT=1", changed,
                 f"{image}:1")
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip()
    assert image_id.startswith("sha256:")
    try:
        script = "cat /new /d/e/f; ls /etc/group; echo $FROM_COMMIT"
        run = cli("run", "--rm", f"{image}:1", "sh", "-c", script)
        assert run.stdout == "hi\nx\n1\n" and "No such file" in run.stderr
        inspect = json.loads(cli("inspect", f"{image}:1").stdout)[0]
        assert len(inspect["RootFS"]["Layers"]) == 2  # the image's layer and the committed one
        assert inspect["Comment"] == "my message" and inspect["Author"] == "me"
        history = cli("history", f"{image}:1").stdout.splitlines()
        assert len(history) == 3 and "my message" in history[1]
        # a container of the committed image starts with no changes of its own
        child = _name("child")
        assert cli("create", "--name", child, f"{image}:1", "true").returncode == 0
        assert cli("diff", child).stdout == ""
        cli("rm", child)
    finally:
        assert cli("rmi", f"{image}:1").returncode == 0


def test_export_is_the_whole_file_system(cli, changed, tmp_path):
    target = tmp_path / "export.tar"
    result = cli("export", "-o", str(target), changed)
    assert result.returncode == 0, result.stderr
    with tarfile.open(target) as tar:
        names = set(tar.getnames())
        assert tar.extractfile("new").read() == b"hi\n"
    assert {"bin/busybox", "d/e/f", "etc/passwd"} <= names and "etc/group" not in names


def test_cp_both_ways_on_stopped_and_running_containers(cli, changed, running, tmp_path):
    local = tmp_path / "local"
    local.mkdir()
    (local / "file").write_text("from the host\n")
    (local / "tree/sub").mkdir(parents=True)
    (local / "tree/sub/leaf").write_text("leaf\n")
    for container in (changed, running):
        assert cli("cp", str(local / "file"), f"{container}:/tmp/").returncode == 0
        assert cli("cp", str(local / "file"), f"{container}:/tmp/renamed").returncode == 0
        assert cli("cp", str(local / "tree"), f"{container}:/").returncode == 0
        out = tmp_path / f"out-{container}"
        out.mkdir()
        assert cli("cp", f"{container}:/tmp/file", str(out)).returncode == 0
        assert cli("cp", f"{container}:/tmp/renamed", str(out / "again")).returncode == 0
        assert cli("cp", f"{container}:/tree", str(out / "tree-copy")).returncode == 0
        assert (out / "file").read_text() == (out / "again").read_text() == "from the host\n"
        assert (out / "tree-copy/sub/leaf").read_text() == "leaf\n"
    # the running container itself sees the files (it prints them once /tree/sub/leaf appears)
    for _ in range(300):
        logs = cli("logs", running).stdout
        if logs:
            break
        time.sleep(0.1)
    assert logs == "from the host\nleaf\n"
    live = tmp_path / "live"
    assert cli("cp", f"{running}:/live", str(live)).returncode == 0 and live.read_text() == "live\n"
    missing = cli("cp", f"{changed}:/no/such/file", str(tmp_path / "x"))
    assert missing.returncode != 0
    assert f"Could not find the file /no/such/file in container {changed}" in missing.stderr


def test_the_docker_cli_diffs_commits_exports_and_copies(docker, changed, tmp_path):
    assert docker("diff", changed).stdout.splitlines() == [
        "A /d", "A /d/e", "A /d/e/f", "C /etc", "D /etc/group", "A /new"
    ]
    image = _name("dockercommit")
    result = docker("commit", "-c", "CMD [\"cat\", \"/new\"]", changed, f"{image}:2")
    assert result.returncode == 0, result.stderr
    try:
        assert docker("run", "--rm", f"{image}:2").stdout == "hi\n"
    finally:
        docker("rmi", f"{image}:2")
    exported = tmp_path / "export.tar"
    assert docker("export", "-o", str(exported), changed).returncode == 0
    with tarfile.open(exported) as tar:
        assert tar.extractfile("d/e/f").read() == b"x\n"
    source = tmp_path / "up.txt"
    source.write_text("up\n")
    assert docker("cp", str(source), f"{changed}:/d/e/").returncode == 0
    assert docker("cp", f"{changed}:/d", str(tmp_path / "down")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "down/e").iterdir()) == ["f", "up.txt"]
    missing = docker("cp", f"{changed}:/nothing-here", str(tmp_path / "y"))
    assert missing.returncode != 0 and "Could not find the file /nothing-here" in missing.stderr


def test_the_sdk_reads_and_writes_archives(sdk, changed):
    container = sdk.containers.get(changed)
    kinds = {item["Path"]: item["Kind"] for item in container.diff()}
    assert kinds["/new"] == 1 and kinds["/etc/group"] == 2 and kinds["/etc"] == 0
    assert container.put_archive("/d", _tar(("put", None), ("put/file.txt", b"sdk\n")))
    chunks, stat = container.get_archive("/d/put/file.txt")
    assert stat["name"] == "file.txt" and stat["size"] == 4 and stat["mode"] == 0o644
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        assert tar.extractfile("file.txt").read() == b"sdk\n"
    _, dir_stat = container.get_archive("/d")
    assert dir_stat["mode"] & (1 << 31)  # Go's ModeDir
    image = container.commit(repository=_name("sdkcommit"), tag="3")
    try:
        assert len(image.attrs["RootFS"]["Layers"]) == 2
    finally:
        sdk.images.remove(image.id)


def test_archive_stat_header_and_errors(daemon, changed):
    links = _tar(("abs", "/d/e"), ("rel", "../../d/e/f"), ("dangling", "../../../nowhere"))
    response = _raw(daemon, "PUT", f"/v1.41/containers/{changed}/archive?path=/tmp", links)
    assert response.status == 200, response.read()
    response.read()
    for link, target in (("abs", "/d/e"), ("rel", "/d/e/f"), ("dangling", "/nowhere")):
        response = _raw(daemon, "HEAD", f"/v1.41/containers/{changed}/archive?path=/tmp/{link}")
        response.read()
        assert response.status == 200
        stat = json.loads(base64.b64decode(response.getheader("X-Docker-Container-Path-Stat")))
        assert stat["name"] == link and stat["mode"] & (1 << 27)  # Go's ModeSymlink
        assert stat["linkTarget"] == target
    response = _raw(daemon, "HEAD", f"/v1.41/containers/{changed}/archive?path=/nope")
    response.read()
    assert response.status == 404
    response = _raw(daemon, "GET", "/v1.41/containers/no-such-container/archive?path=/")
    assert response.status == 404 and b"No such container" in response.read()
    # a directory is not replaced by a file (nor the reverse) when the client asks so
    response = _raw(daemon, "PUT", f"/v1.41/containers/{changed}/archive?path=/&noOverwriteDirNonDir=1",
                    _tar(("d", b"a file where a directory is")))
    assert response.status == 400 and b"cannot overwrite directory" in response.read()
    response = _raw(daemon, "PUT", f"/v1.41/containers/{changed}/archive?path=/new", _tar(("x", b"x")))
    assert response.status == 400 and b"not a directory" in response.read()


def test_escaping_archives_are_refused(daemon, cli, changed, tmp_path):
    for name in ("../../../../escaped-by-cp", "/escaped-by-cp"):
        response = _raw(daemon, "PUT", f"/v1.41/containers/{changed}/archive?path=/tmp",
                        _tar((name, b"x")))
        assert response.status == 400, response.read()
        response.read()
    assert not Path("/escaped-by-cp").exists()


def test_cp_stays_inside_a_container_that_swaps_directories_for_symlinks(cli, busybox, tmp_path):
    """The container flips /target between a directory and a symlink to a host directory's path
    (and a relative ../../.. one) while we copy in and out: nothing of the host is read or written."""
    host_dir = tmp_path / "host-secrets"
    host_dir.mkdir()
    (host_dir / "secret").write_text("host only\n")
    hop = "../" * 12 + str(host_dir).lstrip("/")
    name = _name("racer")
    script = (
        "mkdir -p /real; echo decoy > /real/secret; "
        f"while :; do rm -rf /target; ln -s {host_dir} /target; rm -f /target; mkdir /target; "
        f"echo inside > /target/secret; rm -rf /target; ln -s {hop} /target; rm -f /target; "
        "ln -s /real /target; rm -f /target; mkdir /target; done"
    )
    assert cli("run", "-d", "--name", name, busybox, "sh", "-c", script).returncode == 0
    try:
        payload = tmp_path / "payload"
        payload.write_text("dropped\n")
        for attempt in range(40):
            cli("cp", str(payload), f"{name}:/target/")
            out = tmp_path / f"out{attempt}"
            result = cli("cp", f"{name}:/target/secret", str(out))
            if result.returncode == 0 and out.exists():
                # "" when the copy lands between the container's create and write of the file.
                assert out.read_text() in ("", "inside\n", "decoy\n")
        assert sorted(os.listdir(host_dir)) == ["secret"]
        assert (host_dir / "secret").read_text() == "host only\n"
    finally:
        cli("rm", "-f", name)
