"""Copy-up of an image's directory into a new volume: content, owners and modes, never the host's."""

from __future__ import annotations

import os
from pathlib import Path

from pyengine.volumes.copyup import copy_image_data


def make_rootfs(root: Path) -> None:
    (root / "data" / "sub").mkdir(parents=True)
    (root / "data" / "file").write_text("image content")
    os.chown(root / "data" / "file", 1234, 5678)
    os.chmod(root / "data" / "sub", 0o750)
    (root / "data" / "link").symlink_to("/etc/passwd")
    os.chmod(root / "data", 0o1777)


def test_a_new_volume_gets_the_image_content(tmp_path: Path) -> None:
    rootfs, volume = tmp_path / "rootfs", tmp_path / "volume"
    volume.mkdir()
    make_rootfs(rootfs)
    assert copy_image_data(rootfs, "/data", volume)
    assert (volume / "file").read_text() == "image content"
    info = os.stat(volume / "file")
    assert (info.st_uid, info.st_gid) == (1234, 5678)
    assert os.stat(volume / "sub").st_mode & 0o7777 == 0o750
    assert os.stat(volume).st_mode & 0o7777 == 0o1777  # the volume takes the directory's mode
    assert os.readlink(volume / "link") == "/etc/passwd"  # copied as a link, not followed


def test_a_volume_with_data_is_left_alone(tmp_path: Path) -> None:
    rootfs, volume = tmp_path / "rootfs", tmp_path / "volume"
    volume.mkdir()
    (volume / "mine").write_text("kept")
    make_rootfs(rootfs)
    assert not copy_image_data(rootfs, "/data", volume)
    assert sorted(p.name for p in volume.iterdir()) == ["mine"]


def test_a_symlink_in_the_image_cannot_copy_the_hosts_files(tmp_path: Path) -> None:
    rootfs, volume = tmp_path / "rootfs", tmp_path / "volume"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc" / "inside").write_text("from the image")
    volume.mkdir()
    # /data -> ../../../../etc: outside the root it would be the host's /etc; inside it is /etc
    (rootfs / "data").symlink_to("../../../../../../etc")
    assert copy_image_data(rootfs, "/data", volume)
    assert sorted(p.name for p in volume.iterdir()) == ["inside"]


def test_nothing_at_the_destination_copies_nothing(tmp_path: Path) -> None:
    rootfs, volume = tmp_path / "rootfs", tmp_path / "volume"
    rootfs.mkdir()
    volume.mkdir()
    (rootfs / "afile").write_text("x")
    assert not copy_image_data(rootfs, "/missing", volume)
    assert not copy_image_data(rootfs, "/afile", volume)
    assert list(volume.iterdir()) == []
