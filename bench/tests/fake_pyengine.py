"""A stand-in for ``pyengine daemon`` that leaves behind what the real one would, to test teardown.

    fake_pyengine.py daemon --data-root D --exec-root E -H unix://SOCK [--containers N]
                            [--stubborn-supervisor] [--fail-at-start]

It mounts a tmpfs under the data root, starts a helper child, and double-forks a supervisor
(pid file <exec-root>/supervisor/supervisor.pid) that starts N "containers": busybox sleeping in
a new mount namespace, in a root under the data root (pivot_root'ed into, or chrooted). It answers /_ping and
/containers/json (empty) on the socket.
"""

from __future__ import annotations

import argparse
import http.server
import os
import shutil
import signal
import socketserver
import subprocess
import sys
import time


def start_supervisor(data_root: str, exec_root: str, containers: int, stubborn: bool) -> None:
    if os.fork() != 0:
        return
    os.setsid()
    if os.fork() != 0:
        os._exit(0)
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    rootfs = os.path.join(data_root, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin", "busybox"))
    # Like a runtime: a new mount namespace, the root bind-mounted onto itself and pivot_root'ed
    # into; every other container just chroots.
    pivot = (
        f"mount --make-rprivate / && mount --bind {rootfs} {rootfs} && cd {rootfs} && mkdir -p old"
        " && pivot_root . old && exec /bin/busybox sh -c 'umount -l /old; exec /bin/busybox sleep 1000'"
    )
    for number in range(containers):
        if number % 2 == 0:
            container = ["unshare", "--mount", "--fork", "sh", "-c", pivot]
        else:
            container = ["unshare", "--mount", "--fork", "chroot", rootfs, "/bin/busybox", "sleep", "1000"]
        subprocess.Popen(container, stdin=subprocess.DEVNULL)
    pid_dir = os.path.join(exec_root, "supervisor")
    os.makedirs(pid_dir, exist_ok=True)
    with open(os.path.join(pid_dir, "supervisor.pid.tmp"), "w") as f:
        f.write(str(os.getpid()))
    os.rename(os.path.join(pid_dir, "supervisor.pid.tmp"), os.path.join(pid_dir, "supervisor.pid"))
    while True:
        time.sleep(1000)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        body = {"/_ping": b"OK", "/containers/json?all=1": b"[]"}.get(self.path)
        if body is None:
            self.send_response(404)
            body = b'{"message": "not found"}'
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["daemon"])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--exec-root", required=True)
    parser.add_argument("-H", dest="host", required=True)
    parser.add_argument("--storage-driver")
    parser.add_argument("--containers", type=int, default=2)
    parser.add_argument("--stubborn-supervisor", action="store_true")
    parser.add_argument("--fail-at-start", action="store_true")
    args = parser.parse_args()
    if args.fail_at_start:
        print("fake daemon: refusing to start on purpose", file=sys.stderr)
        sys.exit(3)
    os.makedirs(args.data_root)
    os.makedirs(args.exec_root)
    os.makedirs(os.path.join(args.data_root, "mnt"))
    subprocess.run(["mount", "-t", "tmpfs", "fake", os.path.join(args.data_root, "mnt")], check=True)
    subprocess.Popen(["sleep", "1000"], stdin=subprocess.DEVNULL)  # a helper of the daemon's own
    start_supervisor(args.data_root, args.exec_root, args.containers, args.stubborn_supervisor)
    pid_file = os.path.join(args.exec_root, "supervisor", "supervisor.pid")
    while not os.path.exists(pid_file):
        time.sleep(0.01)
    server = socketserver.UnixStreamServer(args.host.removeprefix("unix://"), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
