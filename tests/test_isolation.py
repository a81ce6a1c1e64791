"""From inside a container: it is PID 1, has its own hostname, cannot see host processes or mounts."""

from __future__ import annotations

import os
import re
import socket


def test_is_pid_1(cli, busybox):
    assert cli("run", "--rm", "busybox", "sh", "-c", "echo $$").stdout == "1\n"


def test_own_hostname(cli, busybox):
    result = cli("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c", "hostname; cat /etc/hostname")
    assert result.stdout == "box1\nbox1\n"
    default = cli("run", "--rm", "busybox", "hostname").stdout.strip()
    assert default != socket.gethostname() and len(default) == 12


def test_cannot_see_host_processes(cli, busybox):
    result = cli("run", "--rm", "busybox", "ps", "-o", "pid,comm")
    pids = [line.split()[0] for line in result.stdout.splitlines()[1:]]
    assert pids == ["1"], result.stdout  # only ps itself, as PID 1
    assert str(os.getpid()) not in result.stdout


def test_cannot_see_host_mounts(cli, busybox, daemon):
    mounts = cli("run", "--rm", "busybox", "cat", "/proc/self/mounts").stdout
    assert daemon.data_root not in mounts
    # no host path under /work anywhere (overlay's own options name layers relative to its root)
    assert not re.search(r"(^|[\s,=:])/work", mounts), mounts
    assert " /proc proc " in mounts and " /dev/pts devpts " in mounts and " /dev/shm tmpfs " in mounts
    assert " /sys sysfs ro," in mounts


def test_only_loopback_network(cli, busybox):
    # the default is the bridge network now (eth0); --network none keeps only lo
    links = cli("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link").stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    assert "UP" in links


def test_environment_user_and_workdir(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "user",
        "busybox",
        "sh",
        "-c",
        "echo $A $PATH; pwd; id -u; id -g",
    )
    assert result.stdout.splitlines() == [
        "1 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "/tmp",
        "1000",
        "1000",
    ]
    numeric = cli("run", "--rm", "-u", "4242:4243", "busybox", "sh", "-c", "id -u; id -g")
    assert numeric.stdout.split() == ["4242", "4243"]


def test_standard_devices(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && ls /dev/pts/ptmx && df -k /dev/shm",
    )
    assert result.returncode == 0, result.stderr
    assert "4\n" in result.stdout
    assert "65536" in result.stdout  # /dev/shm is 64 MiB


def test_no_mounts_left_after_containers(cli, busybox, daemon):
    cli("run", "--rm", "busybox", "true")
    with open("/proc/self/mountinfo") as handle:
        assert daemon.base_dir not in handle.read()
