"""The real docker CLI (classic builder) and the docker SDK's ``images.build`` against our /build."""

from __future__ import annotations

import io
import json

import pytest


@pytest.fixture
def classic_docker(docker):
    """The docker CLI with the classic builder (DOCKER_BUILDKIT=0)."""
    return type(docker)(docker.argv, {**docker.env, "DOCKER_BUILDKIT": "0"})


@pytest.mark.docker_cli
def test_docker_build_classic(classic_docker, cli, busybox, tmp_path):
    (tmp_path / "hello.txt").write_text("hello\n")
    (tmp_path / "Dockerfile").write_text(
        'FROM busybox\nRUN echo built > /built.txt\nCOPY hello.txt /hello.txt\nCMD ["cat","/hello.txt"]\n'
    )
    result = classic_docker("build", "-t", "bt-docker:1", str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Step 1/4 : FROM busybox" in lines
    assert any(line.startswith(" ---> Running in ") for line in lines)
    assert lines[-2].startswith("Successfully built ") and lines[-1] == "Successfully tagged bt-docker:1"
    again = classic_docker("build", "-t", "bt-docker:1", str(tmp_path))
    assert again.stdout.count(" ---> Using cache") == 3
    assert classic_docker("run", "--rm", "bt-docker:1").stdout == "hello\n"
    failed = classic_docker("build", "-f", "-", str(tmp_path), input="FROM busybox\nRUN exit 4\n")
    assert failed.returncode != 0
    assert "returned a non-zero code: 4" in failed.stderr


@pytest.mark.docker_cli
def test_docker_build_syntax_error(classic_docker, busybox, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nNOPE x\n")
    result = classic_docker("build", str(tmp_path))
    assert result.returncode != 0
    assert "line 2: unknown instruction: NOPE" in result.stderr


@pytest.mark.docker_sdk
def test_sdk_images_build(sdk, busybox, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nARG WHO\nRUN echo $WHO > /who\nLABEL k=v\n")
    image, logs = sdk.images.build(
        path=str(tmp_path), tag="bt-sdk:1", buildargs={"WHO": "sdk"}, labels={"x": "y"}
    )
    streamed = "".join(item.get("stream", "") for item in logs)
    assert "Successfully tagged bt-sdk:1" in streamed
    assert image.labels == {"k": "v", "x": "y"}
    assert "bt-sdk:1" in image.tags
    assert sdk.containers.run("bt-sdk:1", "cat /who", remove=True) == b"sdk\n"
    from docker.errors import BuildError

    with pytest.raises(BuildError, match="returned a non-zero code: 2"):
        sdk.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 2\n"), rm=True)


@pytest.mark.docker_sdk
def test_build_api_stream_shape(api, busybox):
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        content = b'FROM busybox\nCMD ["true"]\n'
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    status, body = api(
        "POST", "/v1.41/build?t=bt-api:1&q=0", raw=data.getvalue(), content_type="application/x-tar"
    )
    assert status == 200
    items = (
        [json.loads(line) for line in body.splitlines() if line.strip()] if isinstance(body, str) else [body]
    )
    assert items[0] == {"stream": "Step 1/2 : FROM busybox"}
    assert items[1] == {"stream": "\n"}
    aux = [i for i in items if "aux" in i]
    assert len(aux) == 1 and aux[0]["aux"]["ID"].startswith("sha256:")
    assert items[-1] == {"stream": "Successfully tagged bt-api:1\n"}
    status, _ = api(
        "POST", "/v1.41/build?dockerfile=Nope", raw=data.getvalue(), content_type="application/x-tar"
    )
    assert status == 400
