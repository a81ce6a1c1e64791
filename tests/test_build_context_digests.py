"""The build context by digest (pyengine's CLI only): a fully cached build needs no file content; a
step that is not cached and reads the context makes the daemon ask for it, before any output; the
CLI's digest cache never hides a changed file."""

from __future__ import annotations

import http.client
import json
import os
import socket
import time

from pyengine.cli import build_context as cli_context

DOCKERFILE = "FROM busybox\nCOPY a.txt /a.txt\nRUN cat /a.txt > /copy\n"


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def post_build(daemon, body: bytes, headers: dict[str, str], query: str = "") -> tuple[int, list[dict]]:
    connection = _Unix(daemon.socket)
    try:
        connection.request("POST", f"/v1.41/build?t=bt-digest:1{query}", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read().decode()
    finally:
        connection.close()
    if response.status != 200:
        return response.status, [json.loads(payload)]
    return response.status, [json.loads(line) for line in payload.splitlines() if line.strip()]


def digest_body(root, monkeypatch) -> bytes:
    monkeypatch.setenv("XDG_CACHE_HOME", str(root.parent / "cache"))
    entries = cli_context.context_entries(str(root), "Dockerfile")
    return cli_context.digest_tar(str(root), entries, "Dockerfile", None)


DIGESTS = {"Content-Type": "application/x-tar", "X-Pyengine-Context": "digests"}


def test_daemon_answers_a_cached_build_from_digests_and_asks_for_files_otherwise(
    cli, busybox, daemon, tmp_path, monkeypatch
):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text(DOCKERFILE)
    (root / "a.txt").write_text("one\n")
    built = cli("build", "-q", "-t", "bt-digest:1", str(root), "--no-cache")  # sends the files
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()

    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    assert status == 200
    assert [i["aux"]["ID"] for i in items if "aux" in i] == [image_id]
    streamed = "".join(i.get("stream", "") for i in items)
    assert streamed.startswith("Step 1/3 : FROM busybox") and streamed.count("Using cache") == 2

    (root / "a.txt").write_text("two\n")
    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    assert (status, items) == (200, [{"aux": {"PyengineContext": "needed"}}])  # nothing shown, nothing built
    assert cli("inspect", "--format", "{{.Id}}", "bt-digest:1").stdout.strip() == image_id

    # a step that is not cached but reads nothing of the context runs from the digests alone
    (root / "a.txt").write_text("one\n")
    (root / "Dockerfile").write_text(DOCKERFILE + "RUN echo more > /more\n")
    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    streamed = "".join(i.get("stream", "") for i in items)
    assert status == 200 and "Running in" in streamed and streamed.count("Using cache") == 2, items
    assert cli("run", "--rm", "bt-digest:1", "cat", "/copy", "/more").stdout == "one\nmore\n"

    # digest records without the header that announces them are refused
    status, items = post_build(daemon, digest_body(root, monkeypatch), {"Content-Type": "application/x-tar"})
    assert status == 400 and "X-Pyengine-Context" in items[0]["message"]


def test_cli_rebuilds_a_file_rewritten_with_the_same_size_and_mtime(cli, busybox, tmp_path):
    """Docker's classic builder hashes the content of COPY sources; so does pyengine's, and the
    CLI's stat cache keys on ctime too, which a rewrite always moves (os.utime cannot set it)."""
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "Dockerfile").write_text(DOCKERFILE)
    target = root / "a.txt"
    target.write_text("one\n")
    env = {**cli.env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runner = type(cli)(cli.argv, env)
    time.sleep(cli_context.RACY_SECONDS + 0.2)  # old enough for the CLI to cache its digest
    first = runner("build", "-t", "bt-utime:1", str(root))
    assert first.returncode == 0, first.stderr
    cache_files = list((tmp_path / "cache" / "pyengine" / "build-context").iterdir())
    assert len(cache_files) == 1 and "a.txt" in json.loads(cache_files[0].read_text())["files"]
    again = runner("build", "-t", "bt-utime:1", str(root))
    assert again.stdout.count("Using cache") == 2

    before = os.lstat(target)
    target.write_text("two\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.lstat(target)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    rebuilt = runner("build", "-t", "bt-utime:1", str(root))
    assert rebuilt.returncode == 0, rebuilt.stderr
    steps = rebuilt.stdout.split("Step ")[1:]
    assert ["Using cache" in s for s in steps] == [False, False, False]
    assert rebuilt.stdout.count("Step 1/3") == 1  # the first, by-digest attempt showed nothing
    assert runner("run", "--rm", "bt-utime:1", "cat", "/copy").stdout == "two\n"


def test_what_counts_as_reading_the_context_after_the_first_miss(cli, busybox, daemon, tmp_path, monkeypatch):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "a.txt").write_text("a\n")
    stages = "FROM busybox AS base\nRUN echo {n} > /n\nFROM busybox\nCOPY --from=base /n /n\n"
    # the first miss (RUN) is followed only by COPY --from: built from the digests alone
    (root / "Dockerfile").write_text(stages.format(n=1))
    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    streamed = "".join(i.get("stream", "") for i in items)
    assert status == 200 and "Running in" in streamed and any("aux" in i for i in items), items
    # a COPY from the context in a later stage: the files are asked for before anything runs
    (root / "Dockerfile").write_text(stages.format(n=2) + "COPY a.txt /a.txt\n")
    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    assert (status, items) == (200, [{"aux": {"PyengineContext": "needed"}}])
    # a later stage on an image with build triggers (which may copy from the context): the same
    assert (
        cli(
            "build",
            "-q",
            "-t",
            "bt-digest:onbuild",
            "-f",
            "-",
            str(root),
            input="FROM busybox\nONBUILD RUN true\n",
        ).returncode
        == 0
    )
    (root / "Dockerfile").write_text(stages.format(n=3) + "FROM bt-digest:onbuild\n")
    status, items = post_build(daemon, digest_body(root, monkeypatch), DIGESTS)
    assert (status, items) == (200, [{"aux": {"PyengineContext": "needed"}}])
    # and through the CLI, which then sends the files: one build shown, the right content
    (root / "Dockerfile").write_text(stages.format(n=4) + "COPY a.txt /a.txt\n")
    result = cli("build", "-t", "bt-digest:stages", str(root))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Step 1/5") == 1
    assert cli("run", "--rm", "bt-digest:stages", "cat", "/n", "/a.txt").stdout == "4\na\n"
    assert cli("rmi", "bt-digest:stages", "bt-digest:onbuild", "bt-digest:1").returncode == 0
