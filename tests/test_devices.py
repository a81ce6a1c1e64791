"""Host devices in containers: ``--device``, ``--device-cgroup-rule`` and ``--privileged``, checked
from inside the container on the real kernel (device nodes, the devices cgroup), and bad values
refused at create with Docker's messages and nothing created.

The device the tests pass is a loop device over a temp file the test writes (block 7:N), which
Docker's default cgroup rules do not allow: so "absent", "denied" and "readable" all mean something.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile

import pytest
from pyengine.testing.daemon import pyengine_daemon
from test_userns_remap import PYENGINE, Remapped, remap_user

MARK = b"pyengine-device-test\n"


@pytest.fixture(scope="module")
def loop_device():
    """(path, major, minor) of a loop device over a 1 MiB file starting with MARK; detached after."""
    if shutil.which("losetup") is None:
        pytest.skip("losetup (util-linux) is not installed")
    directory = tempfile.mkdtemp(prefix="pye-dev-")
    backing = os.path.join(directory, "disk.img")
    with open(backing, "wb") as file:
        file.write(MARK + bytes(1024 * 1024 - len(MARK)))
    device = ""
    try:
        device = subprocess.run(
            ["losetup", "--find", "--show", backing], check=True, capture_output=True, text=True
        ).stdout.strip()
        rdev = os.stat(device).st_rdev
        yield device, os.major(rdev), os.minor(rdev)
    finally:
        if device:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def device_dir(loop_device):
    """A directory holding a char node (1:5, like /dev/zero), the loop device's node in a
    subdirectory, and a regular file that is not a device."""
    _, major, minor = loop_device
    directory = tempfile.mkdtemp(prefix="pye-devdir-")
    try:
        os.mknod(os.path.join(directory, "zero"), stat.S_IFCHR | 0o640, os.makedev(1, 5))
        os.mkdir(os.path.join(directory, "sub"))
        os.mknod(os.path.join(directory, "sub", "disk"), stat.S_IFBLK | 0o660, os.makedev(major, minor))
        os.chmod(os.path.join(directory, "sub", "disk"), 0o660)  # mknod's mode went through the umask
        os.chown(os.path.join(directory, "sub", "disk"), 0, 6)
        with open(os.path.join(directory, "notes.txt"), "w") as file:
            file.write("not a device\n")
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(cli, *args: str):
    return cli("run", "--rm", *args)


def containers(api) -> set[str]:
    status, body = api("GET", "/containers/json?all=1")
    assert status == 200
    return {c["Id"] for c in body}


def test_device_node_is_created_and_readable(cli, busybox, loop_device):
    path, major, minor = loop_device
    result = run(
        cli,
        "--device",
        f"{path}:/dev/xda",
        busybox,
        "sh",
        "-c",
        "stat -c '%F %t:%T' /dev/xda; head -c 20 /dev/xda",
    )
    assert result.returncode == 0, result.stderr
    kind, _, text = result.stdout.partition("\n")
    assert kind == f"block special file {major:x}:{minor:x}"
    assert text.encode() == MARK[:20]
    # The same path in the container when only the host path is given.
    result = run(cli, "--device", path, busybox, "head", "-c", "20", path)
    assert result.returncode == 0 and result.stdout.encode() == MARK[:20], result.stderr


def test_without_device_the_node_is_absent_and_denied(cli, busybox, loop_device):
    path, major, minor = loop_device
    result = run(cli, busybox, "sh", "-c", f"test -e {path} && echo present || echo absent")
    assert result.stdout.strip() == "absent"
    # mknod is allowed (Docker's "b *:* m"), opening the node is not.
    result = run(cli, busybox, "sh", "-c", f"mknod /dev/own b {major} {minor} && head -c 1 /dev/own")
    assert result.returncode != 0
    assert "Operation not permitted" in result.stderr


def test_read_only_device_refuses_writes(cli, busybox, loop_device):
    path, _, _ = loop_device
    script = "head -c 20 /dev/xda; echo junk > /dev/xda && echo wrote"
    result = run(cli, "--device", f"{path}:/dev/xda:r", busybox, "sh", "-c", script)
    assert result.stdout.encode() == MARK[:20], result.stderr
    assert "Operation not permitted" in result.stderr
    with open(path, "rb") as device:
        assert device.read(len(MARK)) == MARK  # the write never reached the device


def test_device_cgroup_rule_allows_a_node_made_inside(cli, busybox, loop_device):
    path, major, minor = loop_device
    script = f"mknod /dev/own b {major} {minor} && head -c 20 /dev/own"
    result = run(cli, "--device-cgroup-rule", f"b {major}:{minor} rwm", busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == MARK[:20]
    # A wildcard rule, read and mknod only: reading works, writing is refused by the cgroup.
    script += "; echo junk > /dev/own && echo wrote"
    result = run(cli, "--device-cgroup-rule", f"b {major}:* rm", busybox, "sh", "-c", script)
    assert result.stdout.encode() == MARK[:20], result.stderr
    assert "Operation not permitted" in result.stderr


def test_a_directory_adds_every_device_below_it(cli, busybox, device_dir):
    script = "ls -lR /dev/mine; head -c 20 /dev/mine/sub/disk"
    result = run(cli, "--device", f"{device_dir}:/dev/mine", busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    listing, _, data = result.stdout.rpartition("\n")
    assert data.encode() == MARK[:20]
    lines = {line.split()[-1]: line.split()[0] for line in listing.splitlines() if line[:1] in ("c", "b")}
    # Mode and group come from the host node; the regular file is left out.
    assert lines == {"zero": "crw-r-----", "disk": "brw-rw----"}
    assert "notes.txt" not in listing
    owner = run(cli, "--device", f"{device_dir}:/dev/mine", busybox, "stat", "-c", "%g", "/dev/mine/sub/disk")
    assert owner.stdout.strip() == "6"


def test_privileged_gets_the_host_devices(cli, busybox, loop_device):
    path, _, _ = loop_device
    script = f"head -c 20 {path}; test -c /dev/net/tun && echo tun; head -c 20 /dev/xda"
    result = run(cli, "--privileged", "--device", f"{path}:/dev/xda", busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == MARK[:20] + b"tun\n" + MARK[:20]


BAD_HOST_CONFIGS = [
    (
        {
            "Devices": [
                {"PathOnHost": "/dev/pye-no-such", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}
            ]
        },
        'error gathering device information while adding custom device "/dev/pye-no-such": '
        "no such file or directory",
    ),
    (
        {
            "Devices": [
                {"PathOnHost": "/etc/hostname", "PathInContainer": "/dev/x", "CgroupPermissions": "rwm"}
            ]
        },
        'error gathering device information while adding custom device "/etc/hostname": not a device node',
    ),
    (
        {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x", "CgroupPermissions": "rwx"}]},
        'invalid device mode: "rwx"',
    ),
    (
        {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "dev/x", "CgroupPermissions": "r"}]},
        "dev/x is not an absolute path",
    ),
    ({"DeviceCgroupRules": ["c 1:3"]}, "invalid device cgroup rule format: 'c 1:3'"),
    ({"DeviceCgroupRules": ["x 1:3 rwm"]}, "invalid device cgroup rule format: 'x 1:3 rwm'"),
]


@pytest.mark.parametrize(("host_config", "message"), BAD_HOST_CONFIGS)
def test_bad_devices_are_400_and_create_nothing(api, busybox, host_config, message):
    before = containers(api)
    body = {"Image": busybox, "Cmd": ["true"], "HostConfig": host_config}
    status, answer = api("POST", "/containers/create?name=pye-bad-device", body)
    assert status == 400, answer
    assert message in answer["message"]
    assert containers(api) == before
    assert api("GET", "/containers/pye-bad-device/json")[0] == 404


def test_cli_refuses_bad_device_flags(cli, api, busybox):
    before = containers(api)
    result = cli("create", "--device", "/dev/null:/dev/x:rwx", busybox)
    assert result.returncode == 125 and "bad mode specified: rwx" in result.stderr
    result = cli("create", "--device-cgroup-rule", "c 1:3 rwz", busybox)
    assert result.returncode == 125 and "invalid device cgroup format 'c 1:3 rwz'" in result.stderr
    result = cli("create", "--device", "/dev/pye-no-such", busybox)
    assert result.returncode != 0
    assert 'adding custom device "/dev/pye-no-such": no such file or directory' in result.stderr
    assert containers(api) == before


def test_docker_cli_device_flags(docker, busybox, loop_device):
    path, major, minor = loop_device
    script = f"head -c 20 /dev/xda; mknod /dev/own b {major} {minor} && head -c 20 /dev/own"
    result = docker(
        "run",
        "--rm",
        "--device",
        f"{path}:/dev/xda:r",
        "--device-cgroup-rule",
        f"b {major}:{minor} r",
        busybox,
        "sh",
        "-c",
        script,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.encode() == MARK[:20] * 2
    result = docker("run", "--rm", "--device", "/dev/pye-no-such", busybox, "true")
    assert result.returncode != 0  # 127: the docker CLI reads "no such file" as a missing command
    assert 'error gathering device information while adding custom device "/dev/pye-no-such"' in result.stderr


def test_docker_sdk_devices(sdk, busybox, loop_device):
    path, major, minor = loop_device
    container = sdk.containers.create(
        busybox,
        ["sh", "-c", "head -c 20 /dev/xda; echo junk > /dev/xda || echo refused"],
        devices=[f"{path}:/dev/xda:r"],
        device_cgroup_rules=[f"b {major}:{minor} m"],
    )
    try:
        host_config = container.attrs["HostConfig"]
        assert host_config["Devices"] == [
            {"PathOnHost": path, "PathInContainer": "/dev/xda", "CgroupPermissions": "r"}
        ]
        assert host_config["DeviceCgroupRules"] == [f"b {major}:{minor} m"]
        container.start()
        assert container.wait(timeout=60)["StatusCode"] == 0
        assert container.logs(stdout=True, stderr=False) == MARK[:20] + b"refused\n"
    finally:
        container.remove(force=True)


def test_device_under_userns_remap_binds_the_host_node(busybox_tar, loop_device):
    """In a user namespace mknod is refused: the host's node is bound instead, also when the
    container path differs (found by its numbers under /dev); file permissions then apply as for
    any unprivileged user, so the test opens the node to others for reading while it runs."""
    path, major, minor = loop_device
    mode = stat.S_IMODE(os.stat(path).st_mode)
    with (
        remap_user("pens-remapdev") as start,
        pyengine_daemon(PYENGINE, extra_args=["--userns-remap", "pens-remapdev"]) as daemon,
    ):
        engine = Remapped(daemon, start)
        imported = engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        assert imported.returncode == 0, imported.stderr
        os.chmod(path, mode | 0o004)
        try:
            result = engine.cli(
                "run", "--rm", "--device", f"{path}:/dev/xda:r", "busybox",
                "sh", "-c", "stat -c '%t:%T' /dev/xda; head -c 20 /dev/xda",
            )  # fmt: skip
        finally:
            os.chmod(path, mode)
        assert result.returncode == 0, result.stderr
        assert result.stdout.encode() == f"{major:x}:{minor:x}\n".encode() + MARK[:20]
