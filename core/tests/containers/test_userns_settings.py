"""``--userns-remap`` settings: the remap value to an id map, and what create refuses (no kernel work;
the containers themselves are in tests/test_userns_remap.py and core/tests/runtime/test_userns.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pyengine.containers import userns
from pyengine.containers.service import ContainerService
from pyengine.daemon import userns_remap
from pyengine.daemon.config import DaemonConfig
from pyengine.drivers.storage import StorageDriver
from pyengine.errors import InvalidArgument, NotSupported
from pyengine.hooks import HookCaller
from pyengine.model.container import ContainerCreateRequest, HostConfigSpec
from pyengine.runtime.idmap import IdMap
from pyengine.state.db import Database

REMAP = IdMap.single(100000, 100000, 65536)


def _subid(tmp_path: Path, uid_lines: str, gid_lines: str) -> dict:
    (tmp_path / "subuid").write_text(uid_lines)
    (tmp_path / "subgid").write_text(gid_lines)
    return {"subuid": tmp_path / "subuid", "subgid": tmp_path / "subgid"}


def test_off_unless_set():
    assert userns_remap.resolve(None) is None
    assert userns_remap.resolve("") is None


def test_user_by_name_or_number_takes_its_first_range(tmp_path):
    files = _subid(tmp_path, "daemon:1:1\nroot:200000:65536\nroot:300000:65536\n", "0:400000:1000\n")
    mapping = userns_remap.resolve("root", **files)
    assert mapping == IdMap.single(200000, 400000, 1000)  # the smaller range bounds both maps
    assert userns_remap.resolve("0:0", **files) == mapping
    assert userns_remap.resolve("root:root", **files) == mapping


def test_bad_values_name_what_is_wrong(tmp_path):
    files = _subid(tmp_path, "root:200000:65536\n", "")
    with pytest.raises(InvalidArgument, match='no such user "no-such-user-pens"'):
        userns_remap.resolve("no-such-user-pens", **files)
    with pytest.raises(InvalidArgument, match="no such group"):
        userns_remap.resolve("root:no-such-group-pens", **files)
    with pytest.raises(InvalidArgument, match="no subordinate gid range"):
        userns_remap.resolve("root", **files)
    with pytest.raises(InvalidArgument, match="expected"):
        userns_remap.resolve("root:", **files)


def test_config_takes_dockers_key():
    assert DaemonConfig.model_validate({"userns-remap": "default"}).userns_remap == "default"
    assert DaemonConfig(userns_remap="root").userns_remap == "root"
    assert DaemonConfig().userns_remap is None


def test_create_checks_follow_docker():
    hc = HostConfigSpec.model_validate
    with pytest.raises(InvalidArgument, match="invalid USER mode"):
        userns.check_create(None, hc({"UsernsMode": "private"}), _NoIdmapDriver(Path("/nonexistent")))
    userns.check_create(None, hc({"Privileged": True}), _NoIdmapDriver(Path("/nonexistent")))  # remap off
    with pytest.raises(InvalidArgument, match="PID namespace"):
        userns.check_create(REMAP, hc({"PidMode": "host"}), _NoIdmapDriver(Path("/nonexistent")))
    userns.check_create(REMAP, hc({"UsernsMode": "host", "Privileged": True}), _NoIdmapDriver(Path("/x")))
    assert userns.container_idmap(REMAP, hc({})) == REMAP
    assert userns.container_idmap(REMAP, hc({"UsernsMode": "host"})) is None
    spec = {"linux": {"namespaces": [{"type": "pid"}]}}
    userns.add_to_spec(spec, REMAP)
    assert spec["linux"]["namespaces"][0] == {"type": "user"}
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]


class _NoIdmapDriver(StorageDriver):
    """A driver without IdMappedMount that records what is asked of it (nothing may be)."""

    name = "plain"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def _record(self, name: str, *args, **kwargs):
        self.calls.append(name)
        raise AssertionError(f"{name} must not be called")

    def create(self, *a, **k):
        return self._record("create")

    def remove(self, *a, **k):
        return self._record("remove")

    def exists(self, *a, **k):
        return self._record("exists")

    def parent(self, *a, **k):
        return self._record("parent")

    def mount(self, *a, **k):
        return self._record("mount")

    def unmount(self, *a, **k):
        return self._record("unmount")

    def apply_diff(self, *a, **k):
        return self._record("apply_diff")


def test_remapped_create_on_a_driver_without_idmapped_mounts_fails_and_leaves_nothing(tmp_path):
    driver = _NoIdmapDriver(tmp_path / "storage")
    db = Database(tmp_path / "db.sqlite")
    try:
        service = ContainerService(
            db=db,
            images=None,  # type: ignore[arg-type]  # never reached: the check comes first
            driver=driver,
            supervisor=None,
            hooks=HookCaller(),
            containers_dir=tmp_path / "containers",
        )
        service.userns_remap = REMAP
        request = ContainerCreateRequest.model_validate({"Image": "busybox", "Cmd": ["true"]})
        with pytest.raises(NotSupported, match="storage driver cannot mount a root file system"):
            asyncio.run(service.create(request, "remapped"))
        assert driver.calls == []
        assert list((tmp_path / "containers").iterdir()) == []
        assert service.all() == []
    finally:
        db.close()
