"""Docker's default security, checked from inside a container: capabilities, seccomp, masked and
read-only paths, no mounting, no new namespaces, and no host descriptor inherited."""

from __future__ import annotations

import os

DEFAULT_CAPS = "00000000a80425fb"  # Docker's 14 default capabilities


def status_fields(text: str) -> dict[str, str]:
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def test_default_capabilities_seccomp_and_no_new_privs(cli, busybox):
    result = cli("run", "--rm", "busybox", "cat", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    status = status_fields(result.stdout)
    assert status["CapBnd"] == DEFAULT_CAPS
    assert status["CapEff"] == DEFAULT_CAPS
    assert status["CapPrm"] == DEFAULT_CAPS
    assert status["CapInh"] == "0000000000000000"
    assert status["CapAmb"] == "0000000000000000"
    assert status["Seccomp"] == "2"
    assert status["NoNewPrivs"] == "0"


def test_non_root_user_keeps_only_the_bounding_set(cli, busybox):
    result = cli("run", "--rm", "-u", "1000", "busybox", "cat", "/proc/self/status")
    status = status_fields(result.stdout)
    assert status["CapBnd"] == DEFAULT_CAPS
    assert status["CapEff"] == status["CapPrm"] == "0000000000000000"


def test_no_new_namespaces_and_no_mounts(cli, busybox):
    # user namespaces need no capability: only the seccomp profile refuses them
    result = cli("run", "--rm", "busybox", "unshare", "-U", "true")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr
    for command in (
        ["unshare", "-m", "true"],
        ["unshare", "-n", "true"],
        ["mount", "-t", "tmpfs", "t", "/mnt"],
    ):
        result = cli("run", "--rm", "busybox", *command)
        assert result.returncode != 0, command
        assert "ermission denied" in result.stderr or "not permitted" in result.stderr, result.stderr


def test_seccomp_unconfined_allows_user_namespaces(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; unshare -U true && echo unshared",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Seccomp:", "0", "unshared"]


def test_masked_paths_read_empty(cli, busybox):
    present = [
        path
        for path in ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug")
        if os.path.exists(path)
    ]  # /proc/kcore exists only with CONFIG_PROC_KCORE
    assert "/proc/keys" in present and open("/proc/keys").read()  # the host's is not empty
    script = "; ".join(f"echo {path} $(wc -c < {path})" for path in present)
    result = cli("run", "--rm", "busybox", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{path} 0" for path in present]


def test_proc_sys_and_sys_are_read_only(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo x > /proc/sys/kernel/domainname; echo rc=$?; echo 1 > /proc/sysrq-trigger; echo rc=$?;"
        " mkdir /sys/fs/x; echo rc=$?",
    )
    assert result.stdout.split() == ["rc=1", "rc=1", "rc=1"]
    assert "Read-only file system" in result.stderr


def test_read_only_root(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "touch /x; echo rc=$?; touch /tmp/x; echo rc=$?; touch /dev/shm/x && echo shm-ok",
    )
    assert result.stdout.split() == ["rc=1", "rc=1", "shm-ok"]
    assert "Read-only file system" in result.stderr


def test_no_new_privileges(cli, busybox):
    for option in ("no-new-privileges", "no-new-privileges=true", "no-new-privileges:true"):
        result = cli(
            "run", "--rm", "--security-opt", option, "busybox", "grep", "NoNewPrivs", "/proc/self/status"
        )
        assert result.stdout.split() == ["NoNewPrivs:", "1"], (option, result.stderr)
        # with no_new_privs the filter goes in as the last step: the process still runs under it
    result = cli(
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    )
    assert result.stdout.split() == ["Seccomp:", "2"]


def test_no_host_descriptor_inherited(cli, busybox):
    # the shell's own descriptors (the trailing ":" keeps sh from exec'ing ls in its place)
    result = cli("run", "--rm", "busybox", "sh", "-c", "ls /proc/$$/fd; :")
    assert result.stdout.split() == ["0", "1", "2"], result.stdout
    tty = cli("run", "--rm", "-t", "busybox", "sh", "-c", "ls /proc/$$/fd; :")
    assert tty.stdout.split() == ["0", "1", "2"], tty.stdout


def test_working_directory_resolves_inside_the_root(cli, busybox):
    result = cli("run", "--rm", "-w", "/../../../../tmp/../proc/..", "busybox", "pwd")
    assert result.stdout == "/\n"
