"""Docker volume plugins as our drivers: a tiny real plugin (aiohttp on a unix socket, volumes kept
as directories) answers ``/Plugin.Activate`` and ``/VolumeDriver.*``; our adapter runs the volume
conformance suite against it, and the daemon uses it for ``volume create -d`` and ``run -v``."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
from aiohttp import web
from pyengine.errors import EngineError, NotFound
from pyengine.testing.volume_suite import VolumeDriverSuite
from pyengine.volumes import remote

PLUGIN_NAME = "dirplug"


class DirectoryPlugin:
    """A Docker volume plugin whose volumes are directories under ``base``, served on ``socket_path``.

    It records every call (method, body) in ``calls``, refuses options other than ``uid``, and
    refuses to remove a mounted volume, as a careful third-party plugin does.
    """

    def __init__(self, socket_path: str, base: Path, implements: tuple[str, ...] = ("VolumeDriver",)) -> None:
        self.socket_path = socket_path
        self.base = base
        self.implements = implements
        self.calls: list[tuple[str, dict]] = []
        self.mounts: dict[str, set[str]] = {}
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # ---- the protocol ---------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        raw = await request.read()
        body = json.loads(raw) if raw.strip() else {}
        self.calls.append((method, body))
        handler = getattr(self, "do_" + method.replace(".", "_"), None)
        if handler is None:
            return web.Response(status=404, text="404 page not found")
        try:
            reply = handler(body)
        except LookupError as exc:
            reply = {"Err": str(exc.args[0])}
        return web.json_response(reply, content_type="application/vnd.docker.plugins.v1.2+json")

    def do_Plugin_Activate(self, body: dict) -> dict:
        return {"Implements": list(self.implements)}

    def _volume(self, name: str) -> Path:
        path = self.base / name
        if not name or "/" in name or not path.is_dir():
            raise LookupError(f"no such volume: {name}")
        return path

    def do_VolumeDriver_Create(self, body: dict) -> dict:
        name, opts = body["Name"], body.get("Opts") or {}
        unknown = sorted(set(opts) - {"uid"})
        if unknown:
            return {"Err": f"unknown option {unknown[0]}"}
        if (self.base / name).exists():
            return {"Err": f"volume {name} exists"}
        (self.base / name).mkdir()
        return {"Err": ""}

    def do_VolumeDriver_Remove(self, body: dict) -> dict:
        path = self._volume(body["Name"])
        if self.mounts.get(body["Name"]):
            return {"Err": f"volume {body['Name']} is mounted"}
        shutil.rmtree(path)
        return {"Err": ""}

    def do_VolumeDriver_Mount(self, body: dict) -> dict:
        path = self._volume(body["Name"])
        self.mounts.setdefault(body["Name"], set()).add(body["ID"])
        return {"Mountpoint": str(path), "Err": ""}

    def do_VolumeDriver_Unmount(self, body: dict) -> dict:
        self._volume(body["Name"])
        self.mounts.get(body["Name"], set()).discard(body["ID"])
        return {"Err": ""}

    def do_VolumeDriver_Path(self, body: dict) -> dict:
        return {"Mountpoint": str(self._volume(body["Name"])), "Err": ""}

    def do_VolumeDriver_Get(self, body: dict) -> dict:
        path = self._volume(body["Name"])
        return {
            "Volume": {"Name": body["Name"], "Mountpoint": str(path), "Status": {"backend": "dir"}},
            "Err": "",
        }

    def do_VolumeDriver_List(self, body: dict) -> dict:
        return {
            "Volumes": [{"Name": p.name, "Mountpoint": str(p)} for p in sorted(self.base.iterdir())],
            "Err": "",
        }

    def do_VolumeDriver_Capabilities(self, body: dict) -> dict:
        return {"Capabilities": {"Scope": "local"}}

    # ---- serving --------------------------------------------------------------------------------
    def start(self) -> None:
        async def serve() -> None:
            app = web.Application()
            app.router.add_post("/{method}", self.handle)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            await web.UnixSite(self._runner, self.socket_path).start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        Path(self.socket_path).unlink(missing_ok=True)

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]


# ---- the adapter against the conformance suite ------------------------------------------------------
class TestPluginAdapterConformance(VolumeDriverSuite):
    # Docker's protocol has only "Err": a plugin's refusals arrive as plain errors, not categories.
    remove_while_mounted_error = EngineError
    rejected_options = {"no-such-option": "1"}
    rejected_options_error = EngineError
    create_twice_error = EngineError

    @pytest.fixture
    def driver_root(self):
        short = tempfile.mkdtemp(prefix="pye-plug-", dir="/tmp")  # a unix socket path is short
        (Path(short) / "data").mkdir()
        plugin = DirectoryPlugin(f"{short}/plugin.sock", Path(short) / "data")
        plugin.start()
        try:
            yield Path(short)
        finally:
            plugin.stop()
            shutil.rmtree(short, ignore_errors=True)

    def make_driver(self, root: Path):
        return remote.activate(PLUGIN_NAME, f"unix://{root}/plugin.sock")


def test_plugins_are_found_by_socket_spec_and_json_files(tmp_path: Path) -> None:
    first, second = tmp_path / "run", tmp_path / "etc"
    (first / "nested").mkdir(parents=True)
    second.mkdir()
    (second / "byspec.spec").write_text("unix:///somewhere/byspec.sock\n")
    (second / "byjson.json").write_text(json.dumps({"Name": "byjson", "Addr": "tcp://127.0.0.1:9"}))
    assert remote.find_plugin("byspec", [first, second]) == "unix:///somewhere/byspec.sock"
    assert remote.find_plugin("byjson", [first, second]) == "tcp://127.0.0.1:9"
    assert remote.find_plugin("absent", [first, second]) is None
    assert remote.find_plugin("../etc/byspec", [first, second]) is None


def test_a_plugin_that_is_no_volume_driver_is_refused() -> None:
    short = tempfile.mkdtemp(prefix="pye-plug-", dir="/tmp")
    plugin = DirectoryPlugin(f"{short}/p.sock", Path(short), implements=("NetworkDriver",))
    plugin.start()
    try:
        with pytest.raises(NotFound, match="does not implement VolumeDriver"):
            remote.activate("netonly", f"unix://{short}/p.sock")
    finally:
        plugin.stop()
        shutil.rmtree(short, ignore_errors=True)


# ---- the daemon using the plugin ------------------------------------------------------------------
@pytest.fixture
def plugin(daemon, tmp_path: Path):
    """The plugin listening in the daemon's plugin directory as ``dirplug``."""
    Path(daemon.volume_plugin_dir).mkdir(parents=True, exist_ok=True)
    base = tmp_path / "backend"
    base.mkdir()
    server = DirectoryPlugin(f"{daemon.volume_plugin_dir}/{PLUGIN_NAME}.sock", base)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_plugin_volume_through_the_docker_cli(docker, cli, busybox, plugin: DirectoryPlugin) -> None:
    name = f"pv-{uuid.uuid4().hex[:8]}"
    try:
        created = docker("volume", "create", "-d", PLUGIN_NAME, name)
        assert created.returncode == 0, created.stderr
        assert (plugin.base / name).is_dir()
        listed = docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}").stdout.splitlines()
        assert f"{PLUGIN_NAME} {name}" in listed
        inspected = json.loads(docker("volume", "inspect", name).stdout)[0]
        assert inspected["Mountpoint"] == str(plugin.base / name)
        assert inspected["Status"] == {"backend": "dir"}

        run = docker("run", "--rm", "-v", f"{name}:/d", busybox, "sh", "-c", "echo via-plugin > /d/f")
        assert run.returncode == 0, run.stderr
        assert (plugin.base / name / "f").read_text() == "via-plugin\n"
        mount_calls = [body for method, body in plugin.calls if method == "VolumeDriver.Mount"]
        unmount_calls = [body for method, body in plugin.calls if method == "VolumeDriver.Unmount"]
        assert len(mount_calls) == 1 and mount_calls[0]["Name"] == name and mount_calls[0]["ID"]
        assert unmount_calls == mount_calls  # released at exit with the same ID
        assert plugin.mounts[name] == set()

        refused = docker("volume", "create", "-d", PLUGIN_NAME, "-o", "color=red", f"{name}-bad")
        assert refused.returncode == 1 and "unknown option color" in refused.stderr
        assert not (plugin.base / f"{name}-bad").exists()

        assert docker("volume", "rm", name).returncode == 0
        assert "VolumeDriver.Remove" in plugin.methods()
        assert not (plugin.base / name).exists()
    finally:
        cli("volume", "rm", "-f", name)


def test_an_anonymous_plugin_volume_goes_with_its_container(cli, busybox, plugin: DirectoryPlugin) -> None:
    before = set(p.name for p in plugin.base.iterdir())
    result = cli(
        "run",
        "--rm",
        "--mount",
        f"type=volume,target=/d,volume-driver={PLUGIN_NAME}",
        busybox,
        "touch",
        "/d/x",
    )
    assert result.returncode == 0, result.stderr
    created = [body["Name"] for method, body in plugin.calls if method == "VolumeDriver.Create"]
    assert len(created) == 1
    removed = [body["Name"] for method, body in plugin.calls if method == "VolumeDriver.Remove"]
    assert removed == created
    assert set(p.name for p in plugin.base.iterdir()) == before
