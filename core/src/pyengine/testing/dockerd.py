"""A private, throw-away Docker daemon for benchmarks and tests.

``private_dockerd()`` starts Debian's dockerd with everything of its own under one temporary
directory: data root, exec root (where dockerd starts its own containerd), socket, pid file,
config file and trust key. It changes nothing on the host's network (no bridge, no iptables, no
sysctls), uses its own containerd namespace and cgroup parent so that it cannot collide with
another dockerd on the machine, and on exit leaves no process, mount, cgroup or directory behind.

    with private_dockerd() as docker:
        load_busybox_image(docker.socket, rootfs_tar)
        subprocess.run(["docker", "-H", docker.host, "run", "--rm", "--network", "none",
                        "busybox", "echo", "hello"])

Without a bridge, containers need ``--network none`` (the default network "bridge" does not exist).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyengine.testing import engine_api, hostcleanup

DOCKERD = "/usr/sbin/dockerd"
SHIM_SOCKET_DIR = "/run/containerd/s"
# core/src/pyengine/testing/ -> the repository root (a source checkout; editable installs keep it).
REPO_ROOT = Path(__file__).resolve().parents[4]
MAKE_ROOTFS_SCRIPT = REPO_ROOT / "scripts" / "make-busybox-rootfs.sh"

# Flags that keep dockerd off the host's network configuration.
NO_NETWORK_SIDE_EFFECTS = (
    "--bridge=none",
    "--iptables=false",
    "--ip6tables=false",
    "--ip-forward=false",
    "--ip-masq=false",
    "--userland-proxy=false",
)


class DaemonStartError(RuntimeError):
    """The daemon exited or did not answer /_ping in time; the message carries its log's tail."""


@dataclass(frozen=True)
class DockerDaemon:
    """A running private dockerd. ``host`` is what ``docker -H`` takes."""

    socket: str
    pid: int
    base_dir: str
    data_root: str
    exec_root: str
    log_path: str
    containerd_namespace: str
    cgroup_parent: str

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def version(self) -> dict:
        """The daemon's ``GET /version`` answer (``["Version"]`` is e.g. "20.10.24+dfsg1")."""
        return engine_api.request(self.socket, "GET", "/version")


def dockerd_available() -> bool:
    return os.access(DOCKERD, os.X_OK) and shutil.which("containerd") is not None


def log_tail(path: str | os.PathLike, lines: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_for_ping(socket_path: str, process: subprocess.Popen, timeout: float, log_path: str) -> None:
    """Wait until the daemon answers /_ping; raise DaemonStartError if it exits or times out first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DaemonStartError(
                f"daemon exited with status {process.returncode} before answering /_ping:\n"
                + log_tail(log_path)
            )
        if os.path.exists(socket_path) and engine_api.ping(socket_path):
            return
        time.sleep(0.05)
    raise DaemonStartError(f"daemon did not answer /_ping within {timeout:.0f}s:\n" + log_tail(log_path))


@contextmanager
def private_dockerd(
    *,
    start_timeout: float = 60.0,
    stop_timeout: float = 20.0,
    extra_args: Sequence[str] = (),
    parent_dir: str | None = None,
) -> Iterator[DockerDaemon]:
    """Start a private dockerd, yield it once it answers /_ping, and tear it all down on exit.

    parent_dir is where the temporary directory goes (default /tmp; keep it short, containerd's
    socket path under the exec root must stay below 108 bytes). extra_args go to dockerd as they are.
    """
    if not dockerd_available():
        raise DaemonStartError(f"{DOCKERD} or containerd is not installed (Debian package docker.io)")
    base_dir = tempfile.mkdtemp(prefix="pdk-", dir=parent_dir or "/tmp")
    tag = secrets.token_hex(4)
    daemon = DockerDaemon(
        socket=os.path.join(base_dir, "docker.sock"),
        pid=0,
        base_dir=base_dir,
        data_root=os.path.join(base_dir, "data"),
        exec_root=os.path.join(base_dir, "exec"),
        log_path=os.path.join(base_dir, "dockerd.log"),
        containerd_namespace=f"bench-{tag}",
        # Relative: runc places it under containerd's own cgroup, inside whatever limits we run in.
        cgroup_parent=f"bench-dockerd-{tag}",
    )
    # A config file of our own: the host's /etc/docker/daemon.json must not apply, and the trust
    # key dockerd 20.10 writes (default /etc/docker/key.json) goes under our directory.
    config_path = os.path.join(base_dir, "daemon.json")
    Path(config_path).write_text(json.dumps({"deprecated-key-path": os.path.join(base_dir, "key.json")}))
    args = [
        DOCKERD,
        f"--data-root={daemon.data_root}",
        f"--exec-root={daemon.exec_root}",
        f"--host={daemon.host}",
        f"--pidfile={os.path.join(base_dir, 'dockerd.pid')}",
        f"--config-file={config_path}",
        f"--containerd-namespace={daemon.containerd_namespace}",
        f"--containerd-plugins-namespace={daemon.containerd_namespace}-plugins",
        f"--cgroup-parent={daemon.cgroup_parent}",
        *NO_NETWORK_SIDE_EFFECTS,
        *extra_args,
    ]
    process = None
    try:
        with open(daemon.log_path, "ab") as log:
            # Its own session: a Ctrl-C on the benchmark must not kill it before our teardown runs.
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        daemon = dataclasses.replace(daemon, pid=process.pid)
        wait_for_ping(daemon.socket, process, start_timeout, daemon.log_path)
        yield daemon
    finally:
        teardown_dockerd(daemon, process, stop_timeout=stop_timeout)


def teardown_dockerd(
    daemon: DockerDaemon, process: subprocess.Popen | None, *, stop_timeout: float = 20.0
) -> None:
    """Stop dockerd and remove every trace of it; raise RuntimeError listing what could not go.

    Order: dockerd is asked to stop (it stops its containers and its containerd); whatever still
    runs from our directory (containerd, shims) and their descendants (container processes) are
    killed, deepest first; then mounts under our directory, the cgroup parent and the directory.
    (runc's state lives under the exec root, in runtime-runc/<namespace>, so it goes with it.)
    """
    problems: list[str] = []
    if process is not None and process.poll() is None:
        # Removing the containers first is quick (SIGKILL); on SIGTERM dockerd would instead give
        # each running container its 10 s stop timeout.
        if engine_api.ping(daemon.socket):
            engine_api.remove_all_containers(daemon.socket, timeout=stop_timeout)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    leftovers = hostcleanup.processes_referencing([daemon.base_dir])
    survivors = hostcleanup.stop_processes(leftovers, term_timeout=0.0)
    problems += [f"process {p.pid} ({' '.join(p.cmdline)[:80]}) survived SIGKILL" for p in survivors]
    remove_shim_sockets(daemon)
    left_mounts = hostcleanup.unmount_under([daemon.base_dir])
    problems += [f"mount {m} could not be unmounted" for m in left_mounts]
    problems += [f"cgroup {c} could not be removed" for c in hostcleanup.remove_cgroup(daemon.cgroup_parent)]
    if not left_mounts:
        try:
            hostcleanup.remove_tree(daemon.base_dir)
        except OSError as exc:
            problems.append(f"removing {daemon.base_dir}: {exc}")
    if problems:
        raise RuntimeError("private dockerd teardown incomplete: " + "; ".join(problems))


def remove_shim_sockets(daemon: DockerDaemon) -> None:
    """Remove the sockets that killed containerd shims leave outside our directory.

    A runc v2 shim listens on /run/containerd/s/<sha256 of "<containerd address>/<namespace>/<id>">
    and removes it only when it exits cleanly. The tasks containerd knew are the directories of its
    state dir, so the names can be worked out after every process is gone.
    """
    address = os.path.join(daemon.exec_root, "containerd", "containerd.sock")
    state = os.path.join(daemon.exec_root, "containerd", "daemon", "io.containerd.runtime.v2.task")
    for namespace in (daemon.containerd_namespace, f"{daemon.containerd_namespace}-plugins"):
        try:
            task_ids = os.listdir(os.path.join(state, namespace))
        except FileNotFoundError:
            continue
        for task_id in task_ids:
            digest = hashlib.sha256(os.path.join(address, namespace, task_id).encode()).hexdigest()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(SHIM_SOCKET_DIR, digest))


def make_busybox_rootfs(dest: str | os.PathLike) -> Path:
    """Build the busybox rootfs tar with scripts/make-busybox-rootfs.sh (from the host's busybox)."""
    # An installed (non-editable) pyengine has no scripts/ beside it: use the checkout we run from.
    script = MAKE_ROOTFS_SCRIPT
    if not script.exists():
        script = Path.cwd() / "scripts" / MAKE_ROOTFS_SCRIPT.name
    subprocess.run(["bash", str(script), os.fspath(dest)], check=True)
    return Path(dest)


def load_busybox_image(
    socket_path: str,
    rootfs_tar: str | os.PathLike,
    *,
    docker_cli: Sequence[str] = ("docker",),
    reference: str = "busybox:latest",
) -> None:
    """Import the rootfs tar as an image with CMD ["sh"], using a CLI that has ``import``.

    docker_cli is the client command: ("docker",) for either daemon, or pyengine's own CLI.
    """
    subprocess.run(
        [
            *docker_cli,
            "-H",
            f"unix://{socket_path}",
            "import",
            "-c",
            'CMD ["sh"]',
            os.fspath(rootfs_tar),
            reference,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
