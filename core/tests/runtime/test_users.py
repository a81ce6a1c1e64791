"""Docker's --user forms resolved against an image's /etc/passwd and /etc/group."""

from __future__ import annotations

import pytest
from pyengine.errors import InvalidArgument
from pyengine.runtime.users import resolve_user
from pyengine.testing.bundle import make_busybox_rootfs


@pytest.fixture
def rootfs(tmp_path):
    return make_busybox_rootfs(tmp_path / "rootfs")


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("", (0, 0, [10, 50])),  # root plus the groups listing root as a member
        ("root", (0, 0, [10, 50])),
        ("user", (1000, 1000, [50])),
        ("1000", (1000, 1000, [50])),
        ("user:staff", (1000, 50, [])),  # an explicit group drops the supplementary groups
        ("user:50", (1000, 50, [])),
        ("1000:1000", (1000, 1000, [])),
        ("4242", (4242, 0, [])),  # a number absent from passwd is used as-is
        ("4242:4343", (4242, 4343, [])),
        (":staff", (0, 50, [])),
    ],
)
def test_user_forms(rootfs, user, expected):
    assert resolve_user(rootfs, user) == expected


def test_unknown_user_and_group(rootfs):
    with pytest.raises(
        InvalidArgument, match="unable to find user nosuch: no matching entries in passwd file"
    ):
        resolve_user(rootfs, "nosuch")
    with pytest.raises(
        InvalidArgument, match="unable to find group nosuch: no matching entries in group file"
    ):
        resolve_user(rootfs, "user:nosuch")


def test_out_of_range_id(rootfs):
    with pytest.raises(InvalidArgument, match="range"):
        resolve_user(rootfs, "4294967296")


def test_image_without_passwd_accepts_numbers_only(tmp_path):
    rootfs = tmp_path / "empty"
    rootfs.mkdir()
    assert resolve_user(rootfs, "") == (0, 0, [])
    assert resolve_user(rootfs, "123:456") == (123, 456, [])
    with pytest.raises(InvalidArgument):
        resolve_user(rootfs, "user")


def test_symlinked_passwd_is_read_inside_the_rootfs(rootfs, tmp_path):
    # An image whose /etc/passwd points at a host path must not make us read the host's file.
    host_passwd = tmp_path / "host-passwd"
    host_passwd.write_text("intruder:x:0:0::/:/bin/sh\n")
    (rootfs / "etc" / "passwd").unlink()
    (rootfs / "etc" / "passwd").symlink_to(host_passwd)
    with pytest.raises(InvalidArgument, match="unable to find user intruder"):
        resolve_user(rootfs, "intruder")
    # The same path inside the rootfs is what the symlink means there.
    inside = rootfs / str(host_passwd).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_text("inside:x:7:8::/:/bin/sh\n")
    assert resolve_user(rootfs, "inside") == (7, 8, [])


def test_relative_symlink_cannot_climb_out(rootfs, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "group").write_text("outside:x:99:user\n")
    (rootfs / "etc" / "group").unlink()
    (rootfs / "etc" / "group").symlink_to("../../../../../../../../etc/group")
    # ../.. stops at the rootfs: rootfs/etc/group is the symlink itself -> a loop, read as absent.
    assert resolve_user(rootfs, "user") == (1000, 1000, [])
