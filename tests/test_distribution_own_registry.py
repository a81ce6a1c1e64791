"""Our client against our own registry server (``pyengine registry serve``, branch issue5a), when it
is there: push, pull, run, and a login with htpasswd. Skipped on a tree without the server."""

from __future__ import annotations

import uuid

import pytest

own_registry = pytest.importorskip(
    "pyengine.testing.registry", reason="the registry server is not in this tree"
)
if not hasattr(own_registry, "running_registry"):
    pytest.skip("the registry server harness is not in this tree", allow_module_level=True)


def test_push_pull_run_through_our_own_registry(cli, busybox, tmp_path):
    with own_registry.running_registry(tmp_path / "root") as registry:
        ref = f"{registry.address}/own/bb-{uuid.uuid4().hex[:6]}:1"
        cli("tag", busybox, ref)
        pushed = cli("push", ref)
        assert pushed.returncode == 0, pushed.stderr
        again = cli("push", ref)
        assert "Layer already exists" in again.stdout, again.stdout
        cli("rmi", ref)
        pulled = cli("pull", ref)
        assert pulled.returncode == 0, pulled.stderr
        assert cli("run", "--rm", ref, "echo", "own").stdout == "own\n"
        cli("rmi", ref)
