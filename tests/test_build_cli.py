"""``pyengine build`` on the real kernel: layers and history, the cache, contexts, ADD, failures."""

from __future__ import annotations

import http.server
import json
import os
import socket
import tarfile
import threading
from pathlib import Path

import pytest


def make_context(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return root


def inspect(cli, name: str) -> dict:
    result = cli("inspect", "--type", "image", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def history(cli, name: str) -> list[dict]:
    return [
        json.loads(line)
        for line in cli("history", "--no-trunc", "--format", "{{json .}}", name).stdout.splitlines()
    ]


def container_count(cli) -> int:
    return len(cli("ps", "-aq").stdout.split())


def build_dirs_left(daemon) -> list[str]:
    path = daemon.data_path / "build"
    return [p for p in os.listdir(path) if not p.startswith("tmp")] if path.exists() else []


def test_build_layers_history_and_config(cli, busybox, tmp_path):
    make_context(
        tmp_path,
        {
            "Dockerfile": (
                "FROM busybox\n"
                'ENV GREETING="hi there" DIR=/srv\n'
                'RUN echo "$GREETING" > /greeting && mkdir -p /data\n'
                "COPY --chown=user:user --chmod=640 app/main.sh ${DIR}/main.sh\n"
                "COPY <<EOF /etc/motd\nwelcome $GREETING\nEOF\n"
                "WORKDIR $DIR\nUSER user\nLABEL org.test=yes\nEXPOSE 8080 53/udp\nVOLUME /data\n"
                "STOPSIGNAL SIGINT\nHEALTHCHECK --interval=5s --retries=2 CMD true\nONBUILD RUN echo child\n"
                'ENTRYPOINT ["sh", "-c"]\n'
                "CMD [\"cat /greeting; id -u; pwd; stat -c '%U %a' main.sh; cat /etc/motd\"]\n"
            ),
            "app/main.sh": "echo main\n",
        },
    )
    result = cli("build", "-t", "bt-layers:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Step 1/15 : FROM busybox" in result.stdout
    assert " ---> Running in " in result.stdout and "Removing intermediate container" in result.stdout
    assert "Successfully tagged bt-layers:1" in result.stdout
    image = inspect(cli, "bt-layers:1")
    config = image["Config"]
    assert (
        "GREETING=hi there" in config["Env"] and config["WorkingDir"] == "/srv" and config["User"] == "user"
    )
    assert config["Labels"] == {"org.test": "yes"}
    assert config["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert config["Volumes"] == {"/data": {}} and config["StopSignal"] == "SIGINT"
    assert config["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert config["OnBuild"] == ["RUN echo child"] and config["Entrypoint"] == ["sh", "-c"]
    assert len(image["RootFS"]["Layers"]) == 4  # the base + RUN + two COPYs
    assert len(history(cli, "bt-layers:1")) == 15
    run = cli("run", "--rm", "bt-layers:1")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:5] == ["hi there", "1000", "/srv", "user 640", "welcome hi there"]


def test_cache_reuses_steps_until_the_changed_file(cli, busybox, tmp_path):
    make_context(
        tmp_path,
        {
            "Dockerfile": (
                "FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\n"
                "RUN cat /a.txt > /copy\nCOPY b.txt /b.txt\n"
            ),
            "a.txt": "a1\n",
            "b.txt": "b1\n",
        },
    )
    first = cli("build", "-t", "bt-cache:1", str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert "Using cache" not in first.stdout
    again = cli("build", "-t", "bt-cache:1", str(tmp_path))
    assert again.stdout.count("Using cache") == 4
    (tmp_path / "a.txt").write_text("a2\n")
    touched = cli("build", "-t", "bt-cache:1", str(tmp_path))
    assert touched.returncode == 0, touched.stderr
    steps = touched.stdout.split("Step ")[1:]
    assert ["Using cache" in s for s in steps] == [False, True, False, False, False]
    assert cli("run", "--rm", "bt-cache:1", "cat", "/copy").stdout == "a2\n"
    no_cache = cli("build", "--no-cache", "-q", str(tmp_path))
    assert no_cache.returncode == 0 and no_cache.stdout.strip().startswith("sha256:")
    # a build arg in effect is part of the key
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG V=1\nRUN echo $V > /v\n")
    assert cli("build", "-t", "bt-cache:arg", str(tmp_path)).returncode == 0
    with_arg = cli("build", "--build-arg", "V=2", "-t", "bt-cache:arg", str(tmp_path))
    assert with_arg.stdout.split("Step 3/3")[1].count("Using cache") == 0
    assert cli("run", "--rm", "bt-cache:arg", "cat", "/v").stdout == "2\n"


def test_cache_from_limits_reuse_to_that_image(cli, busybox, tmp_path):
    make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo cf > /cf\n"})
    assert cli("build", "-t", "bt-cf:1", str(tmp_path)).returncode == 0
    hit = cli("build", "--cache-from", "bt-cf:1", str(tmp_path))
    assert "Using cache" in hit.stdout
    miss = cli("build", "--cache-from", "busybox", str(tmp_path))
    assert miss.returncode == 0 and "Using cache" not in miss.stdout


def test_reproducible_layers_with_source_date_epoch(cli, busybox, tmp_path):
    make_context(
        tmp_path,
        {
            "Dockerfile": 'FROM busybox\nRUN mkdir /out && echo same > /out/f\nCOPY src /src\nCMD ["true"]\n',
            "src/a": "a",
        },
    )
    ids = []
    for _ in range(2):
        result = cli(
            "build", "--no-cache", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", str(tmp_path)
        )
        assert result.returncode == 0, result.stderr
        ids.append(result.stdout.strip())
        os.utime(tmp_path / "src" / "a", None)
    assert ids[0] == ids[1]
    layers = inspect(cli, ids[0])["RootFS"]["Layers"]
    assert len(layers) == 3
    assert inspect(cli, ids[0])["Created"].startswith("2023-11-14T22:13:20")
    # the epoch is part of every step's cache key: a build without it does not reuse these steps
    plain = cli("build", "-q", str(tmp_path))
    assert plain.returncode == 0 and plain.stdout.strip() != ids[0]
    cached = cli("build", "-q", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", str(tmp_path))
    assert cached.stdout.strip() == ids[0]


def test_multistage_target_build_args_and_arg_before_from(cli, busybox, tmp_path):
    make_context(
        tmp_path,
        {
            "Dockerfile": (
                "ARG BASE=busybox\nFROM $BASE AS builder\nARG MSG=default\n"
                "RUN echo $MSG > /artifact && ln -s /artifact /absolute-link\n"
                "FROM scratch AS final\nCOPY --from=builder /absolute-link /artifact\n"
                "FROM builder AS debug\nRUN echo debug > /debug\n"
            ),
        },
    )
    result = cli("build", "--target", "final", "--build-arg", "MSG=hello", "-t", "bt-multi:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "Step 5/5" in result.stdout and "debug" not in result.stdout
    image = inspect(cli, "bt-multi:1")
    assert len(image["RootFS"]["Layers"]) == 1
    copy = cli(
        "build",
        "-q",
        "-f",
        "-",
        str(tmp_path),
        input='FROM busybox\nCOPY --from=bt-multi:1 /artifact /got\nCMD ["cat", "/got"]\n',
    )
    assert copy.returncode == 0, copy.stderr
    assert cli("run", "--rm", copy.stdout.strip()).stdout == "hello\n"


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_files(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("from the web\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_add_unpacks_archives_and_fetches_urls(cli, busybox, tmp_path, http_files):
    context = tmp_path / "ctx"
    make_context(context, {"inner/x.txt": "inside\n"})
    with tarfile.open(context / "bundle.tar.gz", "w:gz") as tar:
        tar.add(context / "inner", arcname="inner")
    (context / "Dockerfile").write_text(
        f"FROM busybox\nADD bundle.tar.gz /opt/\nADD {http_files}/remote.txt /web/\n"
        'CMD ["sh", "-c", "cat /opt/inner/x.txt /web/remote.txt; stat -c %a /web/remote.txt"]\n'
    )
    result = cli("build", "-t", "bt-add:1", str(context))
    assert result.returncode == 0, result.stderr
    assert cli("run", "--rm", "bt-add:1").stdout == "inside\nfrom the web\n600\n"
    bad_sum = "sha256:" + "0" * 64
    (context / "Dockerfile").write_text(
        f"FROM busybox\nADD --checksum={bad_sum} {http_files}/remote.txt /r\n"
    )
    mismatch = cli("build", str(context))
    assert mismatch.returncode != 0 and "checksum mismatch" in mismatch.stderr
    (context / "Dockerfile").write_text(f"FROM busybox\nADD http://127.0.0.1:{_closed_port()}/x /x\n")
    failed = cli("build", str(context))
    assert failed.returncode != 0
    assert "failed to fetch http://127.0.0.1:" in failed.stderr


def test_dockerignore_is_honoured(cli, busybox, tmp_path):
    make_context(
        tmp_path,
        {
            "Dockerfile": 'FROM busybox\nCOPY . /ctx/\nCMD ["find", "/ctx", "-type", "f"]\n',
            ".dockerignore": "*.log\n!keep.log\nsecret\n",
            "a.txt": "a",
            "x.log": "x",
            "keep.log": "k",
            "secret/s": "s",
        },
    )
    result = cli("build", "-q", str(tmp_path))
    assert result.returncode == 0, result.stderr
    listed = set(cli("run", "--rm", result.stdout.strip()).stdout.split())
    assert "/ctx/a.txt" in listed and "/ctx/keep.log" in listed
    assert "/ctx/x.log" not in listed and "/ctx/secret/s" not in listed


@pytest.mark.parametrize(
    ("dockerfile", "files", "expected"),
    [
        (
            "FROM busybox\nRUN echo out; exit 7\n",
            {},
            "The command '/bin/sh -c echo out; exit 7' returned a non-zero code: 7 (step 2/2)",
        ),
        ("FROM busybox\nFROOM x\n", {}, "line 2: unknown instruction: FROOM"),
        ("FROM busybox\nCOPY missing.txt /\n", {}, "missing.txt"),
        ("FROM busybox\nCOPY ../etc/passwd /\n", {}, "outside the build context"),
        ("FROM busybox\nCOPY link /\n", {"__link__": "/etc"}, "outside the build context"),
        ("FROM nosuchimage:1\n", {}, "nosuchimage:1"),
        ("FROM busybox\nRUN --mount=type=cache,target=/c true\n", {}, "RUN --mount needs BuildKit"),
    ],
    ids=["run-fails", "syntax", "missing-file", "dotdot", "symlink-out", "no-base", "buildkit-flag"],
)
def test_failures_move_no_tag_and_leave_nothing(cli, busybox, daemon, tmp_path, dockerfile, files, expected):
    (tmp_path / "Dockerfile").write_text(dockerfile)
    for name, target in files.items():
        os.symlink(target, tmp_path / name.strip("_"))
    assert cli("tag", "busybox", "bt-fail:1").returncode == 0
    before = inspect(cli, "bt-fail:1")["Id"]
    containers = container_count(cli)
    result = cli("build", "-t", "bt-fail:1", str(tmp_path))
    assert result.returncode != 0
    assert expected in result.stderr
    assert inspect(cli, "bt-fail:1")["Id"] == before
    assert container_count(cli) == containers
    assert build_dirs_left(daemon) == []
    with open("/proc/self/mountinfo") as mounts:
        assert daemon.data_root not in mounts.read()


def test_run_forms_shell_user_heredoc_and_onbuild(cli, busybox, tmp_path):
    parent = tmp_path / "parent"
    make_context(parent, {"Dockerfile": "FROM busybox\nONBUILD RUN echo triggered > /trigger\n"})
    assert cli("build", "-t", "bt-onbuild:1", str(parent)).returncode == 0
    child = tmp_path / "child"
    make_context(
        child,
        {
            "Dockerfile": (
                "FROM bt-onbuild:1\n"
                'RUN ["sh", "-c", "echo exec > /exec"]\n'
                'SHELL ["/bin/sh", "-ec"]\n'
                'RUN <<EOT\necho heredoc > /heredoc\necho "$0 $-" > /shell\nEOT\n'
                "USER user\nRUN id -u > /tmp/uid\n"
                "CMD cat /trigger /exec /heredoc /tmp/uid\n"
            )
        },
    )
    result = cli("build", "-t", "bt-onbuild:child", str(child))
    assert result.returncode == 0, result.stderr
    assert "# Executing 1 build trigger" in result.stdout
    image = inspect(cli, "bt-onbuild:child")
    assert image["Config"]["OnBuild"] is None
    assert image["Config"]["Cmd"] == ["/bin/sh", "-ec", "cat /trigger /exec /heredoc /tmp/uid"]
    assert cli("run", "--rm", "bt-onbuild:child").stdout == "triggered\nexec\nheredoc\n1000\n"
    assert "e" in cli("run", "--rm", "bt-onbuild:child", "cat", "/shell").stdout.split()[-1]


def test_intermediate_images_are_hidden_and_have_parents(cli, busybox, tmp_path):
    make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN echo x > /x\nLABEL step=2\n"})
    result = cli("build", "-t", "bt-parent:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    image = inspect(cli, "bt-parent:1")
    parent = inspect(cli, image["Parent"])
    assert parent["Parent"] == inspect(cli, "busybox")["Id"]
    listed = cli("images", "-q", "--no-trunc").stdout.split()
    assert image["Id"] in listed and parent["Id"] not in listed
    assert parent["Id"] in cli("images", "-a", "-q", "--no-trunc").stdout.split()


def test_a_client_that_leaves_cancels_the_build(cli, busybox, daemon, tmp_path):
    import subprocess
    import time

    make_context(tmp_path, {"Dockerfile": "FROM busybox\nRUN sleep 120\n"})
    containers = container_count(cli)
    client = subprocess.Popen(
        [*cli.argv, "build", str(tmp_path)], stdout=subprocess.PIPE, text=True, env=cli.env
    )
    try:
        for line in client.stdout:
            if "Running in" in line:
                break
        assert container_count(cli) == containers + 1
    finally:
        client.kill()
        client.wait()
    deadline = time.monotonic() + 60
    while container_count(cli) != containers and time.monotonic() < deadline:
        time.sleep(0.2)
    assert container_count(cli) == containers
