"""Run busybox containers on the real kernel and look at them from the inside."""

from __future__ import annotations

import os
import signal

import pytest
from conftest import run_container, write


def run_sh(bundle, script: str, **spec_options):
    bundle_dir, spec = bundle(["sh", "-c", script], **spec_options)
    return run_container(write(bundle_dir, spec))


def test_echo_reaches_stdout_and_stderr(bundle):
    run = run_sh(bundle, "echo hello; echo oops >&2")
    assert run.error is None
    assert run.stdout == "hello\n"
    assert run.stderr == "oops\n"
    assert run.exit_code == 0
    assert not run.leftover_children


def test_stdin_is_the_given_fd(bundle):
    bundle_dir, spec = bundle(["cat"])
    run = run_container(write(bundle_dir, spec), stdin_data=b"from the host\n")
    assert run.stdout == "from the host\n"


def test_process_is_pid_1_in_its_own_pid_namespace(bundle):
    run = run_sh(bundle, "echo $$; ps -o pid,comm; true")
    lines = run.stdout.splitlines()
    assert lines[0] == "1"
    processes = [line.split() for line in lines[2:]]
    # Only the shell and ps itself: no host process is visible.
    assert [p[1] for p in processes] == ["sh", "ps"] and processes[0][0] == "1", run.stdout


def test_own_hostname(bundle):
    run = run_sh(bundle, "hostname", hostname="box-1")
    assert run.stdout == "box-1\n"
    assert os.uname().nodename != "box-1"


def test_host_mounts_are_not_visible(bundle):
    run = run_sh(bundle, "cat /proc/self/mountinfo")
    mount_points = {line.split()[4] for line in run.stdout.splitlines()}
    assert "/" in mount_points and "/proc" in mount_points
    for host_only in ("/work", "/run", "/boot", "/var/lib"):
        assert host_only not in mount_points


def test_proc_dev_shm_and_pts_are_mounted(bundle):
    run = run_sh(
        bundle,
        "ls /proc/1/status && ls /dev && test -d /dev/shm && test -c /dev/pts/ptmx && "
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && grep -c ' /dev/shm ' /proc/self/mountinfo",
    )
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.split()
    for node in ("null", "zero", "full", "random", "urandom", "tty", "ptmx", "fd", "stdin", "shm", "pts"):
        assert node in lines
    assert lines[-2:] == ["4", "1"]


def test_masked_and_readonly_paths(bundle):
    run = run_sh(
        bundle,
        "ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo writable; "
        "grep -w /proc/sys /proc/self/mountinfo | grep -c ro,",
    )
    assert run.stdout.split() == ["0", "1"], run.stdout


def test_only_loopback_and_it_is_up(bundle):
    run = run_sh(bundle, "ls /sys/class/net; ip -o link show lo")
    lines = run.stdout.splitlines()
    assert lines[0] == "lo"
    assert "UP" in lines[1]


def test_env_and_cwd(bundle):
    run = run_sh(bundle, 'echo "$GREETING"; pwd', env=["GREETING=hi there", "PATH=/bin"], cwd="/work/dir")
    assert run.stdout == "hi there\n/work/dir\n"


def test_cwd_that_is_a_file_fails_clearly(bundle):
    run = run_sh(bundle, "true", cwd="/etc/passwd")
    assert run.error is not None and "not a directory" in run.error
    assert not run.leftover_children


def test_user_switch(bundle):
    bundle_dir, spec = bundle(["sh", "-c", "id -u; id -g; id -G; cat /proc/self/status | grep CapEff"])
    spec["process"]["user"] = {"uid": 1000, "gid": 1000, "additionalGids": [50]}
    run = run_container(write(bundle_dir, spec))
    lines = run.stdout.splitlines()
    assert lines[:2] == ["1000", "1000"]
    assert sorted(lines[2].split()) == ["1000", "50"]
    assert lines[3].split()[1] == "0000000000000000"  # no capabilities left for a non-root user


def test_root_keeps_only_the_configured_capabilities(bundle):
    bundle_dir, spec = bundle(["sh", "-c", "grep -E 'Cap(Eff|Bnd)' /proc/self/status"])
    spec["process"]["capabilities"] = {
        s: ["CAP_CHOWN", "CAP_KILL"] for s in ("bounding", "effective", "permitted")
    }
    run = run_container(write(bundle_dir, spec))
    expected = f"{(1 << 0) | (1 << 5):016x}"
    assert [line.split()[1] for line in run.stdout.splitlines()] == [expected, expected]


def test_rlimits_and_no_new_privileges(bundle):
    bundle_dir, spec = bundle(["sh", "-c", "ulimit -n; grep NoNewPrivs /proc/self/status"])
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": 321, "hard": 654}]
    spec["process"]["noNewPrivileges"] = True
    run = run_container(write(bundle_dir, spec))
    assert run.stdout.split() == ["321", "NoNewPrivs:", "1"]


def test_readonly_root(bundle):
    bundle_dir, spec = bundle(
        ["sh", "-c", "touch /newfile || echo refused; touch /dev/shm/ok && echo tmpfs ok"]
    )
    spec["root"]["readonly"] = True
    run = run_container(write(bundle_dir, spec))
    assert run.stdout == "refused\ntmpfs ok\n"
    assert not (bundle_dir / "rootfs" / "newfile").exists()


def test_exit_code_is_passed_through(bundle):
    run = run_sh(bundle, "exit 42")
    assert run.exit_code == 42


def test_killed_by_a_signal(bundle):
    bundle_dir, spec = bundle(["sleep", "100"])
    run = run_container(write(bundle_dir, spec), kill_with=signal.SIGKILL)
    assert run.exit_code == -signal.SIGKILL
    assert not run.leftover_children


def test_pid_1_ignores_signals_it_has_no_handler_for(bundle):
    # As in Docker: the kernel protects a pid namespace's init; `docker stop` then needs SIGKILL.
    run = run_sh(bundle, "kill -TERM 1; echo alive")
    assert run.stdout == "alive\n"


def test_missing_executable(bundle):
    bundle_dir, spec = bundle(["nosuch"])
    run = run_container(write(bundle_dir, spec))
    assert run.error == 'exec: "nosuch": executable file not found in $PATH'
    assert not run.leftover_children


def test_missing_absolute_path_and_not_executable(bundle):
    bundle_dir, spec = bundle(["/nope"])
    assert (
        run_container(write(bundle_dir, spec)).error == 'exec: "/nope": stat /nope: no such file or directory'
    )
    bundle_dir, spec = bundle(["/etc/passwd"])
    assert run_container(write(bundle_dir, spec)).error == 'exec: "/etc/passwd": permission denied'


def test_symlink_mount_destination_stays_inside_rootfs(bundle, tmp_path):
    host_dir = tmp_path / "host-target"
    host_dir.mkdir()
    source = tmp_path / "volume"
    source.mkdir()
    (source / "marker").write_text("from the volume\n")
    bundle_dir, spec = bundle(["sh", "-c", "cat /escape/marker; touch /escape/written"])
    # The image's /escape points at a host path: the bind mount must land in rootfs/<that path>.
    (bundle_dir / "rootfs" / "escape").symlink_to(host_dir)
    spec["mounts"].append(
        {"destination": "/escape", "type": "bind", "source": str(source), "options": ["rbind"]}
    )
    run = run_container(write(bundle_dir, spec))
    assert run.stdout == "from the volume\n"
    assert list(host_dir.iterdir()) == []
    assert (bundle_dir / "rootfs" / str(host_dir).lstrip("/")).is_dir()
    assert (source / "written").exists()


def test_readonly_bind_mount_of_a_file(bundle, tmp_path):
    source = tmp_path / "hosts"
    source.write_text("127.0.0.1 localhost\n")
    bundle_dir, spec = bundle(["sh", "-c", "cat /etc/hosts; echo x >> /etc/hosts || echo refused"])
    spec["mounts"].append(
        {"destination": "/etc/hosts", "type": "bind", "source": str(source), "options": ["rbind", "ro"]}
    )
    run = run_container(write(bundle_dir, spec))
    assert run.stdout == "127.0.0.1 localhost\nrefused\n"
    assert source.read_text() == "127.0.0.1 localhost\n"


def test_terminal(bundle):
    bundle_dir, spec = bundle(["sh", "-c", "tty; stty size; ls -l /dev/console | wc -l"], terminal=True)
    spec["process"]["consoleSize"] = {"height": 33, "width": 101}
    run = run_container(write(bundle_dir, spec))
    assert run.error is None
    assert run.stdout.replace("\r\n", "\n") == "/dev/pts/0\n33 101\n1\n"


def test_no_host_fds_leak_into_the_container(bundle):
    extra = os.open("/dev/null", os.O_RDONLY)  # inheritable on purpose
    os.set_inheritable(extra, True)
    try:
        run = run_sh(bundle, "ls /proc/self/fd")
    finally:
        os.close(extra)
    assert run.stdout.split() == ["0", "1", "2", "3"]  # 3 is the directory ls has open


def test_signal_dispositions_are_reset(bundle):
    # Python ignores SIGPIPE; the container must see the default action.
    bundle_dir, spec = bundle(["grep", "-E", "Sig(Ign|Blk)", "/proc/self/status"])
    run = run_container(write(bundle_dir, spec))
    assert [line.split()[1] for line in run.stdout.splitlines()] == ["0" * 16, "0" * 16]


def test_start_fails_when_bundle_is_broken(bundle):
    bundle_dir, spec = bundle(["true"])
    spec["mounts"].append({"destination": "/data", "type": "bind", "source": "/nonexistent/source"})
    run = run_container(write(bundle_dir, spec))
    assert run.error is not None and "/nonexistent/source" in run.error
    assert not run.leftover_children


def test_namespace_path_is_joined(bundle):
    # Joining the host's UTS namespace (path entry) instead of creating one.
    bundle_dir, spec = bundle(["sh", "-c", "readlink /proc/self/ns/uts; hostname"])
    our_uts = f"/proc/{os.getpid()}/ns/uts"
    spec["linux"]["namespaces"] = [{"type": "mount"}, {"type": "pid"}, {"type": "uts", "path": our_uts}]
    spec.pop("hostname")
    run = run_container(write(bundle_dir, spec))
    assert run.stdout.splitlines() == [os.readlink(our_uts), os.uname().nodename]


def test_setup_that_hangs_is_killed_after_the_timeout(bundle, tmp_path):
    # Opening a FIFO as a namespace path blocks until a writer comes: a stand-in for any hang.
    fifo = tmp_path / "not-a-namespace"
    os.mkfifo(fifo)
    bundle_dir, spec = bundle(["true"])
    spec["linux"]["namespaces"].append({"type": "ipc", "path": str(fifo)})
    spec["linux"]["namespaces"].remove({"type": "ipc"})
    run = run_container(write(bundle_dir, spec), timeout=0.5)
    assert run.error == "container setup did not finish within 0.5 seconds"
    assert not run.leftover_children


def test_sysctls_and_extra_devices(bundle):
    bundle_dir, spec = bundle(
        ["sh", "-c", "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; ls -l /dev/fuse"]
    )
    spec["linux"]["sysctl"] = {"net.ipv4.ip_unprivileged_port_start": "0"}
    spec["linux"]["devices"] = [
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o640, "uid": 0, "gid": 5}
    ]
    run = run_container(write(bundle_dir, spec))
    lines = run.stdout.splitlines()
    assert lines[0] == "0"
    assert (
        lines[1].startswith("crw-r-----") and lines[1].split()[4:6] == ["10,", "229"] and " tty " in lines[1]
    )


def test_caller_must_be_a_subreaper(bundle):
    from pyengine.errors import StartFailed
    from pyengine.runtime import start_container

    bundle_dir, spec = bundle(["true"])
    with pytest.raises(StartFailed, match="subreaper"):
        start_container(write(bundle_dir, spec), stdin=None, stdout=None, stderr=None)
