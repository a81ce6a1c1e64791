"""A user's session with our own CLI: run, ps, logs, stop, rm, images, tag, import, version, info."""

from __future__ import annotations

import json
import time


def test_run_rm_echo(cli, busybox):
    result = cli("run", "--rm", "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    assert cli("ps", "-aq").stdout == ""  # --rm removed it


def test_exit_code_and_stderr_pass_through(cli, busybox):
    result = cli("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_killed_by_signal_is_128_plus_signal(cli, busybox):
    # A PID 1 ignores signals it has no handler for, except SIGKILL from outside its namespace.
    container_id = cli(
        "run", "-d", "busybox", "sh", "-c", "trap 'exit 0' USR2; sleep 60 & wait"
    ).stdout.strip()
    try:
        assert cli("kill", "-s", "KILL", container_id).returncode == 0
        assert cli("wait", container_id).stdout.strip() == "137"
    finally:
        cli("rm", "-f", container_id)


def test_missing_command_exits_127(cli, busybox):
    result = cli("run", "--rm", "busybox", "nosuchcommand")
    assert result.returncode == 127
    assert "executable file not found" in result.stderr
    assert cli("ps", "-aq").stdout == ""


def test_detached_container_lifecycle(cli, busybox):
    name = "web-lifecycle"
    run = cli("run", "-d", "--name", name, "busybox", "sh", "-c", "while :; do echo tick; sleep 0.2; done")
    assert run.returncode == 0, run.stderr
    container_id = run.stdout.strip()
    assert len(container_id) == 64
    try:
        ps = cli("ps", "--format", "{{.Names}} {{.Status}}")
        assert f"{name} Up" in ps.stdout
        time.sleep(1)
        logs = cli("logs", "--tail", "3", name)
        assert logs.stdout.splitlines() == ["tick"] * 3
        follow = cli("logs", "-f", "--tail", "1", name, timeout=2, check_timeout=False)
        assert follow.stdout.startswith("tick\n")
        stop = cli("stop", "-t", "1", name)
        assert stop.returncode == 0 and stop.stdout.strip() == name
        inspect = json.loads(cli("inspect", name).stdout)[0]
        assert inspect["State"]["Status"] == "exited"
        assert inspect["State"]["ExitCode"] == 137  # sh as PID 1 ignores SIGTERM: killed after 1 s
        assert cli("ps", "-q").stdout == ""
        assert container_id[:12] in cli("ps", "-aq").stdout
    finally:
        cli("rm", "-f", name)
    assert cli("ps", "-aq").stdout == ""


def test_images_inspect_tag_rmi(cli, busybox):
    images = cli("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:latest" in images.stdout.split()
    inspect = json.loads(cli("inspect", "busybox").stdout)[0]
    assert inspect["Id"].startswith("sha256:")
    assert inspect["Config"]["Cmd"] == ["sh"]
    assert cli("inspect", "--format", "{{.Os}}/{{.Architecture}}", "busybox").stdout.strip() == "linux/amd64"
    assert cli("tag", "busybox", "mine:1").returncode == 0
    assert json.loads(cli("inspect", "mine:1").stdout)[0]["Id"] == inspect["Id"]
    rmi = cli("rmi", "mine:1")
    assert rmi.returncode == 0
    assert "Untagged: mine:1" in rmi.stdout
    assert "Deleted" not in rmi.stdout  # busybox:latest still names it
    assert cli("inspect", "mine:1").returncode != 0


def test_import_with_changes(cli, busybox_tar, tmp_path):
    result = cli(
        "import", "-c", 'CMD ["echo", "from-import"]', "-c", "ENV GREETING=hi", str(busybox_tar), "imported:1"
    )
    assert result.returncode == 0, result.stderr
    try:
        run = cli("run", "--rm", "imported:1")
        assert run.stdout == "from-import\n"
        env = cli("run", "--rm", "imported:1", "sh", "-c", "echo $GREETING")
        assert env.stdout == "hi\n"
        history = cli("history", "imported:1")
        assert "Imported from" in history.stdout
    finally:
        cli("rmi", "imported:1")


def test_version_and_info(cli, storage_driver):
    version = cli("version")
    assert version.returncode == 0
    assert "Server" in version.stdout and "1.41" in version.stdout
    info = cli("info")
    assert info.returncode == 0
    assert storage_driver in info.stdout  # the storage driver found through its entry point
    assert "events" in info.stdout  # the core's own /events hook plugin


def test_ps_filters_and_formats(cli, busybox):
    cli("run", "--name", "exited-one", "busybox", "sh", "-c", "exit 2")
    try:
        out = cli("ps", "-a", "--filter", "exited=2", "--format", "{{.Names}}")
        assert out.stdout.split() == ["exited-one"]
        out = cli("ps", "-a", "--filter", "name=exited-o", "--format", "{{json .State}}")
        assert out.stdout.strip() == '"exited"'
        table = cli("ps", "-a", "--format", "table {{.Names}}\t{{.Status}}")
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["NAMES", "STATUS"]
        assert lines[1].startswith("exited-one") and "Exited (2)" in lines[1]
    finally:
        cli("rm", "exited-one")


def test_interactive_tty(cli, busybox, run_in_pty):
    output, status = run_in_pty(
        [*cli.argv, "run", "-it", "--rm", "busybox", "sh"],
        send=[b"tty; echo $TERM\r", b"exit 3\r"],
        env=cli.env,
    )
    assert status == 3, output
    assert b"/dev/pts/0" in output and b"xterm" in output


def test_rename(cli, busybox):
    cli("create", "--name", "before-rename", "busybox", "true")
    try:
        assert cli("rename", "before-rename", "after-rename").returncode == 0
        listed = cli("ps", "-a", "--filter", "name=after-rename", "--format", "{{.Names}}")
        assert listed.stdout == "after-rename\n"
        refused = cli("rename", "after-rename", "x")
        assert refused.returncode == 1 and "Invalid container name (x)" in refused.stderr
    finally:
        cli("rm", "after-rename")
