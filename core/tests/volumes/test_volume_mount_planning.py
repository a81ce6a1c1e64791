"""Turning Binds, Mounts, Tmpfs and VOLUMEs into mount points: Docker's rules and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyengine.errors import InvalidArgument
from pyengine.volumes.mounts import mount_order, parse_bind, plan_mounts, spec_mount


def test_binds_name_volumes_or_host_paths() -> None:
    volume = parse_bind("data:/srv/data:ro")
    assert (volume.Type, volume.Name, volume.Destination, volume.RW, volume.Mode) == (
        "volume",
        "data",
        "/srv/data",
        False,
        "ro",
    )
    assert volume.CopyImageData and not volume.Anonymous
    bind = parse_bind("/host/dir/:/ctr:rshared")
    assert (bind.Type, bind.Source, bind.Destination, bind.RW, bind.Propagation) == (
        "bind",
        "/host/dir",
        "/ctr",
        True,
        "rshared",
    )
    anonymous = parse_bind("/scratch")
    assert anonymous.Type == "volume" and anonymous.Anonymous and anonymous.Name == ""
    assert not parse_bind("data:/d:nocopy").CopyImageData


@pytest.mark.parametrize(
    "spec, message",
    [
        ("data:/d:xyz", "invalid mode: xyz"),
        ("data:/d:ro,rw", "invalid mode: ro,rw"),
        ("data:/d:nocopy,nocopy", "invalid mode: nocopy,nocopy"),
        ("data:rel", "invalid volume specification: 'data:rel'"),
        ("data:/", "invalid volume specification: 'data:/'"),
        ("/a:/b:/c:/d", "invalid volume specification: '/a:/b:/c:/d'"),
        ("/tmp:/d:nocopy", "field VolumeOptions must not be specified"),
        ("x:/d", "volume name is too short"),
        ("a/b:/d", "includes invalid characters for a local volume name"),
    ],
)
def test_bad_binds_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(")):
        parse_bind(spec)


def test_mounts_are_checked_as_docker_checks_them(tmp_path: Path) -> None:
    def plan(*mounts: dict) -> list:
        return plan_mounts(None, list(mounts), None, None, None)[0]

    (point,) = plan({"Type": "bind", "Source": str(tmp_path), "Target": "/t", "ReadOnly": True})
    assert point.Type == "bind" and not point.RW and point.Propagation == "rprivate"
    with pytest.raises(InvalidArgument, match="bind source path does not exist"):
        plan({"Type": "bind", "Source": str(tmp_path / "no"), "Target": "/t"})
    (created,) = plan(
        {
            "Type": "bind",
            "Source": str(tmp_path / "no"),
            "Target": "/t",
            "BindOptions": {"CreateMountpoint": True},
        }
    )
    assert created.Source == str(tmp_path / "no")
    with pytest.raises(InvalidArgument, match='type "volume": field BindOptions must not be specified'):
        plan({"Type": "volume", "Target": "/t", "BindOptions": {"Propagation": "rshared"}})
    with pytest.raises(InvalidArgument, match="field Target must not be empty"):
        plan({"Type": "tmpfs"})
    with pytest.raises(InvalidArgument, match='type "nfs": mount type unknown'):
        plan({"Type": "nfs", "Target": "/t"})
    (tmpfs,) = plan(
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 16 << 20, "Mode": 0o1777}}
    )
    assert tmpfs.TmpfsOptions == ["size=16384k", "mode=1777"]
    assert spec_mount(tmpfs, "")["options"] == ["noexec", "nosuid", "nodev", "size=16384k", "mode=1777"]


def test_image_volumes_yield_to_explicit_mounts_and_duplicates_are_refused() -> None:
    points, _ = plan_mounts(
        ["data:/data"], None, {"/run": "size=1m"}, {"/cache": {}}, {"/data": {}, "/var/lib/x": {}}
    )
    assert [(p.Type, p.Destination, p.Anonymous) for p in points] == [
        ("volume", "/data", False),
        ("tmpfs", "/run", False),
        ("volume", "/cache", True),
        ("volume", "/var/lib/x", True),
    ]
    assert not points[1].Listed  # --tmpfs mounts are not in inspect's Mounts, as with Docker
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /d"):
        plan_mounts(["a1:/d"], None, {"/d": ""}, None, None)


def test_parents_are_mounted_before_children() -> None:
    points, _ = plan_mounts(["a1:/a/b/c", "a2:/a", "a3:/a/b"], None, None, None, None)
    assert [p.Destination for p in mount_order(points)] == ["/a", "/a/b", "/a/b/c"]


def test_spec_entries_bind_read_only_with_propagation() -> None:
    point = parse_bind("/host:/ctr:ro,rslave")
    assert spec_mount(point, "/host") == {
        "destination": "/ctr",
        "type": "bind",
        "source": "/host",
        "options": ["rbind", "rslave", "ro"],
    }
