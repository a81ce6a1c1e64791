"""The volume service on a real SQLite file and the local driver: records, filters, in-use rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyengine.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from pyengine.hooks import HookCaller
from pyengine.state.db import Database
from pyengine.volumes.mounts import plan_mounts
from pyengine.volumes.service import ANONYMOUS_LABEL, VolumeService

pytest.importorskip("pyengine_volume_local")


@pytest.fixture
def service(tmp_path: Path):
    db = Database(tmp_path / "db.sqlite")
    users: dict[str, list[str]] = {}
    volumes = VolumeService(db=db, hooks=HookCaller(), volumes_root=tmp_path / "volumes")
    volumes.container_users = lambda name: users.get(name, [])
    volumes.test_users = users  # type: ignore[attr-defined]
    try:
        yield volumes
    finally:
        db.close()


def test_create_records_and_lists_with_filters(service: VolumeService) -> None:
    volume, new = service.create("data", labels={"tier": "db"})
    assert new and volume.Mountpoint.endswith("/volumes/data/_data") and volume.Labels == {"tier": "db"}
    again, new_again = service.create("data")
    assert not new_again and again.Name == "data"  # Docker returns the existing volume
    unnamed, _ = service.create()
    assert len(unnamed.Name) == 64 and not unnamed.Labels
    points, options = plan_mounts(["/anon"], None, None, None, None)
    service.prepare(points, options, owner="c1")
    anonymous = service.get(points[0].Name)
    assert anonymous.Labels == {ANONYMOUS_LABEL: ""}
    assert [v.Name for v in service.list({"label": ["tier=db"]})] == ["data"]
    assert sorted(v.Name for v in service.list({"label!": [ANONYMOUS_LABEL]})) == sorted(
        ["data", unnamed.Name]
    )
    assert [v.Name for v in service.list({"name": ["dat"]})] == ["data"]
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        service.list({"colour": ["red"]})


def test_a_driver_clash_and_unknown_drivers(service: VolumeService) -> None:
    service.create("data")
    with pytest.raises(
        NotFound, match='create other: error looking up volume plugin nope: plugin "nope" not found'
    ):
        service.create("other", driver="nope")
    with pytest.raises(NotFound):
        service.get("other")
    with pytest.raises(AlreadyExists, match='already exists with the "local" driver'):
        service.create("data", driver="otherdriver")


def test_in_use_volumes_cannot_be_removed_or_pruned(service: VolumeService) -> None:
    service.create("busy")
    service.create("idle")
    service.test_users["busy"] = ["c" * 64]  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match=f"remove busy: volume is in use - \\[{'c' * 64}\\]"):
        service.remove("busy")
    deleted, _ = service.prune()
    assert deleted == ["idle"]
    assert [v.Name for v in service.list({"dangling": ["false"]})] == ["busy"]


def test_a_container_being_created_holds_its_volumes(service: VolumeService) -> None:
    service.create("named")
    points, options = plan_mounts(["named:/a", "fresh:/b", "/anon"], None, None, None, None)
    created = service.prepare(points, options, owner="newcontainer")
    assert sorted(created) == sorted(["fresh", points[2].Name])
    with pytest.raises(Conflict, match="newcontainer"):
        service.remove("named")
    assert service.prune() == ([], 0)
    service.rollback(created, "newcontainer")  # the create failed: its new volumes go, the others stay
    assert [v.Name for v in service.list()] == ["named"]
    service.remove("named")


def test_a_failing_prepare_leaves_nothing(service: VolumeService) -> None:
    points, options = plan_mounts(
        None,
        [
            {"Type": "volume", "Source": "first", "Target": "/a"},
            {
                "Type": "volume",
                "Source": "second",
                "Target": "/b",
                "VolumeOptions": {"DriverConfig": {"Name": "nope"}},
            },
        ],
        None,
        None,
        None,
    )
    with pytest.raises(NotFound):
        service.prepare(points, options, owner="c1")
    assert service.list() == []
    assert service.users_of("first") == []


def test_a_volume_on_disk_without_a_record_is_adopted(service: VolumeService) -> None:
    service.driver("local").create("orphan", {})  # as if the daemon died before recording it
    assert service.list() == []
    assert service.adopt_orphans() == ["orphan"]
    assert [v.Name for v in service.list()] == ["orphan"]
    assert service.adopt_orphans() == []
    service.remove("orphan")
