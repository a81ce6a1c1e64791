"""The reference registry (Debian's ``docker-registry``, distribution v2) on loopback, for tests and
benchmarks: its own root and config in a temporary directory, a free port on 127.0.0.1, optional
htpasswd basic auth; stopped and removed on exit.

    with reference_registry() as registry:
        subprocess.run(["pyengine", "push", f"{registry.address}/team/bb:1"])
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

REGISTRY_BINARY = "/usr/bin/docker-registry"


@dataclass(frozen=True)
class RegistryProcess:
    address: str  # 127.0.0.1:PORT
    root: str  # the storage root
    base_dir: str
    pid: int


def registry_available() -> bool:
    return os.access(REGISTRY_BINARY, os.X_OK)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (what the registry's htpasswd auth accepts), made with libxcrypt."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # crypt leaves the stdlib in 3.13
        import crypt
    return f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}"


@contextmanager
def reference_registry(
    *, users: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[RegistryProcess]:
    """Start docker-registry on 127.0.0.1:<free port>; with ``users``, htpasswd basic auth."""
    if not registry_available():
        raise RuntimeError(f"{REGISTRY_BINARY} is not installed (Debian package docker-registry)")
    base_dir = tempfile.mkdtemp(prefix="pye-reg-")
    root = os.path.join(base_dir, "root")
    port = free_port()
    auth = ""
    if users:
        htpasswd = os.path.join(base_dir, "htpasswd")
        with open(htpasswd, "w") as out:
            out.writelines(htpasswd_line(u, p) + "\n" for u, p in users.items())
        auth = f"auth:\n  htpasswd:\n    realm: pyengine-test\n    path: {htpasswd}\n"
    config = os.path.join(base_dir, "config.yml")
    with open(config, "w") as out:
        out.write(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
        )
    log = open(os.path.join(base_dir, "registry.log"), "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [REGISTRY_BINARY, "serve", config],
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    log.close()
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"docker-registry exited: {open(os.path.join(base_dir, 'registry.log')).read()[-2000:]}"
                )
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2).close()
                break
            except urllib.error.HTTPError:
                break  # 401 with auth: it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not answer in time") from None
                time.sleep(0.05)
        yield RegistryProcess(f"127.0.0.1:{port}", root, base_dir, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(OSError):
            shutil.rmtree(base_dir)
