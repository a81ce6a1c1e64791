"""The docker SDK for Python against our daemon."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.docker_sdk

docker_sdk = pytest.importorskip("docker")


def test_containers_run_returns_output(sdk, busybox):
    assert sdk.containers.run("busybox", "echo hi", remove=True) == b"hi\n"


def test_containers_run_nonzero_raises_container_error(sdk, busybox):
    with pytest.raises(docker_sdk.errors.ContainerError) as info:
        sdk.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 4"], remove=True)
    assert info.value.exit_status == 4


def test_detached_container_object(sdk, busybox):
    container = sdk.containers.run("busybox", ["sh", "-c", "echo ready; sleep 60"], detach=True, name="sdk-c")
    try:
        container.reload()
        assert container.status == "running"
        assert container.name == "sdk-c"
        assert [c.name for c in sdk.containers.list()] == ["sdk-c"]
        container.stop(timeout=1)
        assert container.wait()["StatusCode"] == 137
        assert container.logs() == b"ready\n"
    finally:
        container.remove(force=True)


def test_images_api(sdk, busybox):
    image = sdk.images.get("busybox")
    assert "busybox:latest" in image.tags
    assert any("busybox:latest" in i.tags for i in sdk.images.list())
    with pytest.raises(docker_sdk.errors.ImageNotFound):
        sdk.images.get("nosuchimage:1")
    with pytest.raises(docker_sdk.errors.NotFound):
        sdk.containers.get("nosuchcontainer")


def test_version_and_ping(sdk):
    assert sdk.ping() is True
    assert sdk.version()["ApiVersion"] == "1.41"


def test_run_output_survives_removal_racing_the_log_stream(sdk, busybox):
    """Regression: docker-py removes the container right after wait, while it still reads the log
    stream; a follower that reopened the log file by path lost the output when the removal won."""
    for _ in range(10):
        assert sdk.containers.run("busybox", ["sh", "-c", "echo one; echo two"], remove=True) == b"one\ntwo\n"
