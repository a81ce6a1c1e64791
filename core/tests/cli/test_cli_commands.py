"""The other commands against a scripted daemon: the calls they make and what they print."""

from __future__ import annotations

import json
import time
from pathlib import Path

from scripted_daemon import Reply, Request, error, frame

CID = "febc9683d6117c1e1c3e4d6c2b5d3c8d1b0e3f0c6f0a5b4c3d2e1f0a9b8c7d6e"
IMAGE_ID = "sha256:1c07c4615e16d80c1d111e9f41872dfc8979046c5f69502493d3b8ab6d82f277"
CONTAINER_JSON = {
    "Id": CID,
    "Name": "/web",
    "Config": {"Tty": False, "Cmd": ["sh"]},
    "State": {"Running": True},
}
IMAGE_JSON = {"Id": IMAGE_ID, "RepoTags": ["busybox:latest"], "Config": {"Cmd": ["sh"]}}


def routes(table: dict[str, Reply]):
    def route(request: Request) -> Reply:
        return table.get(f"{request.method} {request.path}") or error(404, f"No such object: {request.path}")

    return route


def test_ps_lists_with_filters_and_prints_dockers_table(daemon, cli) -> None:
    listed = [
        {
            "Id": CID,
            "Names": ["/web"],
            "Image": "busybox",
            "ImageID": IMAGE_ID,
            "Command": "sleep 100",
            "Created": int(time.time()) - 150,
            "Ports": [],
            "Labels": {},
            "State": "exited",
            "Status": "Exited (0) 2 minutes ago",
        }
    ]
    scripted = daemon(routes({"GET /containers/json": Reply(body=listed)}))
    result = cli(scripted.host, "ps", "-a", "--filter", "status=exited", "--filter", "name=web")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    assert lines[1].startswith(
        'febc9683d611   busybox   "sleep 100"   2 minutes ago   Exited (0) 2 minutes ago'
    )
    assert lines[1].endswith("web")
    request = scripted.find("GET", "/containers/json")
    assert request.query["all"] == ["1"]
    assert json.loads(request.query["filters"][0]) == {"status": {"exited": True}, "name": {"web": True}}

    quiet = cli(scripted.host, "ps", "-q", "--no-trunc")
    assert quiet.stdout == CID + "\n"
    formatted = cli(scripted.host, "ps", "--format", "{{.Names}}|{{.State}}")
    assert formatted.stdout == "web|exited\n"


def test_ps_template_error_exits_1(daemon, cli) -> None:
    scripted = daemon(routes({"GET /containers/json": Reply(body=[])}))
    result = cli(scripted.host, "ps", "--format", "{{.ID")
    assert result.returncode == 1
    assert result.stderr == "failed to parse template: template: :1: unclosed action\n"


def test_images_and_quiet(daemon, cli) -> None:
    listed = [
        {
            "Id": IMAGE_ID,
            "RepoTags": ["busybox:latest", "bb:1"],
            "Created": int(time.time()) - 600,
            "Size": 1982256,
            "SharedSize": -1,
            "Containers": -1,
        }
    ]
    scripted = daemon(routes({"GET /images/json": Reply(body=listed)}))
    result = cli(scripted.host, "images", "busybox")
    assert result.stdout.splitlines() == [
        "REPOSITORY   TAG       IMAGE ID       CREATED          SIZE",
        "busybox      latest    1c07c4615e16   10 minutes ago   1.98MB",
        "bb           1         1c07c4615e16   10 minutes ago   1.98MB",
    ]
    assert json.loads(scripted.find("GET", "/images/json").query["filters"][0]) == {
        "reference": {"busybox": True}
    }
    assert cli(scripted.host, "images", "-q").stdout == "1c07c4615e16\n"


def test_inspect_tries_container_then_image_and_reports_missing(daemon, cli) -> None:
    scripted = daemon(
        routes(
            {
                "GET /containers/web/json": Reply(body=CONTAINER_JSON),
                "GET /images/busybox/json": Reply(body=IMAGE_JSON),
            }
        )
    )
    result = cli(scripted.host, "inspect", "web", "busybox")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [CONTAINER_JSON, IMAGE_JSON]
    assert result.stdout.startswith('[\n    {\n        "Id": ')  # indented by 4 like docker

    formatted = cli(scripted.host, "inspect", "-f", "{{.Name}} {{json .Config.Cmd}}", "web")
    assert formatted.stdout == '/web ["sh"]\n'

    missing = cli(scripted.host, "inspect", "nosuch")
    assert missing.returncode == 1
    assert missing.stdout == "[]\n"
    assert missing.stderr == "Error: No such object: nosuch\n"
    assert scripted.calls()[-4:] == [
        "GET /containers/nosuch/json",
        "GET /images/nosuch/json",
        "GET /networks/nosuch",
        "GET /volumes/nosuch",
    ]

    typed = cli(scripted.host, "inspect", "--type", "image", "web")
    assert typed.returncode == 1
    assert typed.stderr.startswith("Error response from daemon: No such object")

    bad_key = cli(scripted.host, "inspect", "-f", "{{.Nope}}", "web")
    assert bad_key.returncode == 1
    assert 'map has no entry for key "Nope"' in bad_key.stderr


def test_lifecycle_commands_send_dockers_queries(daemon, cli) -> None:
    scripted = daemon(
        routes(
            {
                "POST /containers/web/stop": Reply(204),
                "POST /containers/old/stop": Reply(304),
                "POST /containers/web/kill": Reply(204),
                "POST /containers/web/restart": Reply(204),
                "DELETE /containers/web": Reply(204),
                "POST /containers/web/start": Reply(204),
                "POST /containers/web/rename": Reply(204),
            }
        )
    )
    stop = cli(scripted.host, "stop", "-t", "1", "web", "old", "gone")
    assert stop.returncode == 1
    assert stop.stdout == "web\nold\n"
    assert stop.stderr == "Error response from daemon: No such object: /containers/gone/stop\n"
    assert scripted.find("POST", "/containers/web/stop").query == {"t": ["1"]}

    assert cli(scripted.host, "kill", "-s", "HUP", "web").stdout == "web\n"
    assert scripted.find("POST", "/containers/web/kill").query == {"signal": ["HUP"]}
    assert cli(scripted.host, "restart", "web").returncode == 0
    assert scripted.find("POST", "/containers/web/restart").query == {}
    assert cli(scripted.host, "rm", "-f", "-v", "web").stdout == "web\n"
    assert scripted.find("DELETE", "/containers/web").query == {"force": ["1"], "v": ["1"]}

    assert cli(scripted.host, "rename", "web", "site").returncode == 0
    assert scripted.find("POST", "/containers/web/rename").query == {"name": ["site"]}

    start = cli(scripted.host, "start", "web", "gone")
    assert start.returncode == 1
    assert start.stdout == "web\n"
    assert start.stderr.endswith("Error: failed to start containers: gone\n")


def test_wait_prints_status_codes(daemon, cli) -> None:
    scripted = daemon(
        routes({"POST /containers/web/wait": Reply(chunks=[b'{"Error":null,"StatusCode":7}\n'])})
    )
    result = cli(scripted.host, "wait", "web")
    assert (result.returncode, result.stdout) == (0, "7\n")
    assert scripted.find("POST", "/containers/web/wait").query == {}


def test_logs_inspects_then_demultiplexes(daemon, cli) -> None:
    body = frame(1, b"out1\n") + frame(2, b"err1\n") + frame(1, b"out2\n")
    scripted = daemon(
        routes(
            {
                "GET /containers/web/json": Reply(body=CONTAINER_JSON),
                f"GET /containers/{CID}/logs": Reply(
                    chunks=[body[:5], body[5:17], body[17:]], content_type="application/vnd.docker.raw-stream"
                ),
            }
        )
    )
    result = cli(scripted.host, "logs", "--tail", "5", "-t", "-f", "web")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("out1\nout2\n", "err1\n")
    assert scripted.find("GET", f"/containers/{CID}/logs").query == {
        "stderr": ["1"],
        "stdout": ["1"],
        "tail": ["5"],
        "follow": ["1"],
        "timestamps": ["1"],
    }


def test_image_commands(daemon, cli, tmp_path: Path) -> None:
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(b"not really a tar, the daemon decides")
    scripted = daemon(
        routes(
            {
                "POST /images/busybox/tag": Reply(201, b"", content_type="text/plain"),
                "DELETE /images/bb:1": Reply(body=[{"Untagged": "bb:1"}, {"Deleted": IMAGE_ID}]),
                "POST /images/create": Reply(chunks=[b'{"status":"' + IMAGE_ID.encode() + b'"}\r\n']),
                "GET /images/busybox/history": Reply(
                    body=[
                        {
                            "Id": IMAGE_ID,
                            "Created": int(time.time()) - 60,
                            "CreatedBy": "",
                            "Size": 1982256,
                            "Comment": "Imported",
                        }
                    ]
                ),
            }
        )
    )
    assert cli(scripted.host, "tag", "busybox", "localhost:5000/bb:v1").returncode == 0
    assert scripted.find("POST", "/images/busybox/tag").query == {
        "repo": ["localhost:5000/bb"],
        "tag": ["v1"],
    }

    rmi = cli(scripted.host, "rmi", "-f", "bb:1")
    assert rmi.stdout == f"Untagged: bb:1\nDeleted: {IMAGE_ID}\n"
    assert scripted.find("DELETE", "/images/bb:1").query == {"force": ["1"]}

    imported = cli(scripted.host, "import", "-c", 'CMD ["sh"]', "-m", "hello", str(tarball), "mine:1")
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout == IMAGE_ID + "\n"
    request = scripted.find("POST", "/images/create")
    assert request.query == {
        "fromSrc": ["-"],
        "repo": ["mine:1"],
        "tag": [""],
        "message": ["hello"],
        "changes": ['CMD ["sh"]'],
    }
    assert request.body == tarball.read_bytes()
    assert request.headers["transfer-encoding"] == "chunked"  # streamed, not held in memory

    piped = cli(scripted.host, "import", "-", stdin=b"tar bytes from stdin")
    assert piped.returncode == 0, piped.stderr
    assert scripted.requests[-1].body == b"tar bytes from stdin"

    history = cli(scripted.host, "history", "busybox")
    assert history.stdout.splitlines()[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "1c07c4615e16   About a minute ago" in history.stdout


def test_stream_error_line_fails_the_command(daemon, cli) -> None:
    stream = [
        b'{"status":"Pulling from library/x","id":"latest"}\n',
        b'{"errorDetail":{"message":"registry unreachable"},"error":"registry unreachable"}\n',
    ]
    scripted = daemon(routes({"POST /images/create": Reply(chunks=stream)}))
    result = cli(scripted.host, "pull", "x")
    assert result.returncode == 1
    assert result.stdout == "latest: Pulling from library/x\n"
    assert result.stderr == "registry unreachable\n"


def test_daemon_error_message_and_status(daemon, cli) -> None:
    scripted = daemon(routes({}))
    result = cli(scripted.host, "wait", "nosuch")
    assert result.returncode == 1
    assert result.stderr == "Error response from daemon: No such object: /containers/nosuch/wait\n"


def test_info_shows_pyengine_drivers_and_hooks(daemon, cli) -> None:
    info = {
        "Containers": 2,
        "ContainersRunning": 1,
        "ContainersPaused": 0,
        "ContainersStopped": 1,
        "Images": 3,
        "Driver": "overlay",
        "DriverStatus": [["Backing Filesystem", "extfs"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"]},
        "PyengineDrivers": {
            "storage": [{"Name": "overlay", "Status": "active"}, {"Name": "vfs"}],
            "network": [],
        },
        "PyengineHooks": ["events", "audit"],
        "MemTotal": 16 * 1024**3,
        "NCPU": 2,
    }
    scripted = daemon(routes({"GET /info": Reply(body=info)}))
    result = cli(scripted.host, "info")
    assert result.returncode == 0, result.stderr
    for line in [
        " Containers: 2",
        "  Running: 1",
        " Storage Driver: overlay",
        "  Backing Filesystem: extfs",
        "  Network: bridge host null",
        " Pyengine Drivers:",
        "  network: (none)",
        "  storage: overlay (active), vfs",
        " Hooks:",
        "  events",
        "  audit",
        " Total Memory: 16GiB",
    ]:
        assert line in result.stdout.splitlines()
    assert cli(scripted.host, "info", "--format", "{{.Driver}}").stdout == "overlay\n"


def test_version_shows_client_and_server(daemon, cli) -> None:
    server = {
        "Platform": {"Name": "pyengine"},
        "Components": [
            {
                "Name": "Engine",
                "Version": "0.1.0",
                "Details": {"ApiVersion": "1.41", "MinAPIVersion": "1.24", "Os": "linux", "Arch": "amd64"},
            }
        ],
        "Version": "0.1.0",
        "ApiVersion": "1.41",
    }
    scripted = daemon(routes({"GET /version": Reply(body=server)}))
    result = cli(scripted.host, "version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Client:\n Version:")
    assert "Server: pyengine\n Engine:\n  Version:          0.1.0\n" in result.stdout
    assert "  API version:      1.41 (minimum version 1.24)" in result.stdout
    assert cli(scripted.host, "version", "-f", "{{.Server.Version}}").stdout == "0.1.0\n"


def test_events_streams_dockers_lines(daemon, cli) -> None:
    event = {
        "status": "create",
        "id": CID,
        "from": "busybox",
        "Type": "container",
        "Action": "create",
        "Actor": {"ID": CID, "Attributes": {"name": "web", "image": "busybox"}},
        "time": 1795370847,
        "timeNano": 1795370847075228880,
    }
    scripted = daemon(routes({"GET /events": Reply(chunks=[json.dumps(event).encode() + b"\n"])}))
    result = cli(scripted.host, "events", "--since", "1795370000", "--filter", "type=container")
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.endswith(f"container create {CID} (image=busybox, name=web)")
    assert ".075228880" in line
    assert scripted.find("GET", "/events").query == {
        "since": ["1795370000"],
        "filters": ['{"type":{"container":true}}'],
    }
    formatted = cli(scripted.host, "events", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
    assert formatted.stdout == "create web\n"


def test_exec_creates_starts_with_upgrade_and_reads_the_exit_code(daemon, cli) -> None:
    exec_id = "e" * 64
    scripted = daemon(
        routes(
            {
                "GET /containers/web/json": Reply(body=CONTAINER_JSON),
                "POST /containers/web/exec": Reply(201, {"Id": exec_id}),
                f"POST /exec/{exec_id}/start": Reply(hijack=frame(1, b"in\n") + frame(2, b"err\n")),
                f"GET /exec/{exec_id}/json": Reply(body={"ID": exec_id, "Running": False, "ExitCode": 4}),
            }
        )
    )
    result = cli(scripted.host, "exec", "-e", "A=1", "-w", "/tmp", "web", "sh", "-c", "exit 4")
    assert (result.returncode, result.stdout, result.stderr) == (4, "in\n", "err\n")
    assert scripted.calls() == [
        "GET /containers/web/json",
        "POST /containers/web/exec",
        f"POST /exec/{exec_id}/start",
        f"GET /exec/{exec_id}/json",
    ]
    config = scripted.find("POST", "/containers/web/exec").json()
    assert config["Cmd"] == ["sh", "-c", "exit 4"]
    assert (config["Env"], config["WorkingDir"], config["Tty"], config["AttachStdin"]) == (
        ["A=1"],
        "/tmp",
        False,
        False,
    )
    start = scripted.find("POST", f"/exec/{exec_id}/start")
    assert start.json() == {"Detach": False, "Tty": False}
    assert start.headers["upgrade"] == "tcp"
    assert scripted.stdin_received == [b""]

    missing = cli(scripted.host, "exec", "gone", "true")
    assert missing.returncode == 1
    assert scripted.calls()[-1] == "GET /containers/gone/json"
