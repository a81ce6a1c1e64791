"""Network throughput and latency, pyengine vs Docker: a published port from the host's loopback,
container to container on one bridge, and ``network create`` + ``connect`` latency.

    python bench/network.py [--mib 256] [--repeat 3] [--pyengine "python -m pyengine"] [--json FILE]

All traffic stays on the host's loopback and on bridges this benchmark makes (subnets 10.123.x.0/24
checked against the host's routes). The sink in the container is busybox ``nc -ll -e`` (a new
``cat >/dev/null`` per connection); the source is a Python socket on the host (published port) or
``time dd | nc`` in a second container (container to container, timed inside it).

Docker's side: a private dockerd on a bridge this benchmark creates (``--bridge``), with
``--iptables=false``, so it changes no rule of the host's firewall. Its published port therefore
goes through docker-proxy, the userland proxy, which is also what Docker uses for traffic from
127.0.0.1 by default. Enabling Docker's iptables would rewrite the host's global iptables chains
(FORWARD, nat PREROUTING/OUTPUT) shared with everything else on this machine, so Docker's kernel
DNAT path is not measured here. Prints ratios; never asserts them.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.networks.ipam import host_routes  # noqa: E402
from pyengine.testing import daemon as pyengine_daemon  # noqa: E402
from pyengine.testing import dockerd, engine_api  # noqa: E402

SINK = "printf '#!/bin/sh\\ncat >/dev/null\\n' >/sink && chmod +x /sink && exec nc -ll -p 5001 -e /sink"
#: the source: nc runs /src on the connected socket, so dd writes straight into it
SOURCE = (
    "printf '#!/bin/sh\\nexec dd if=/dev/zero bs=1M count={mib} 2>/dev/null\\n' >/src && chmod +x /src"
    " && time nc {ip} 5001 -e /src"
)
CHUNK = b"\0" * (1 << 20)


def free_subnets(count: int) -> list[str]:
    import ipaddress

    routes = host_routes()
    out = []
    for third in range(100, 200):
        net = ipaddress.IPv4Network(f"10.123.{third}.0/24")
        if not any(net.overlaps(r) for r in routes):
            out.append(str(net))
        if len(out) == count:
            return out
    raise SystemExit("no free 10.123.x.0/24 subnets")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Client:
    def __init__(self, argv: list[str], socket_path: str) -> None:
        self.argv = argv
        self.socket = socket_path

    def __call__(self, *args: str, check: bool = True) -> str:
        result = subprocess.run([*self.argv, *args], capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {result.stderr.strip()}")
        return result.stdout


def push_through(port: int, mib: int) -> float:
    """MB/s of ``mib`` MiB sent to 127.0.0.1:port until the sink has read them all."""
    for _ in range(50):
        try:
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            break
        except OSError:
            time.sleep(0.2)
    else:
        raise RuntimeError(f"nothing answers on 127.0.0.1:{port}")
    with conn:
        conn.settimeout(120)
        start = time.perf_counter()
        for _ in range(mib):
            conn.sendall(CHUNK)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(65536):
            pass
        elapsed = time.perf_counter() - start
    return mib * 1.048576 / elapsed


def timed_rate(output: str, mib: int) -> float:
    """MB/s from busybox time's ``real 0m 0.45s`` (10 ms resolution: send enough data)."""
    match = re.search(r"real\s+(\d+)m\s*([\d.]+)s", output)
    if not match:
        raise RuntimeError(f"no time report in: {output[-300:]}")
    seconds = int(match.group(1)) * 60 + float(match.group(2))
    return mib * 1.048576 / max(seconds, 0.01)


def measure_side(
    name: str, cli: Client, subnet: str, mib: int, repeat: int, latency_subnets: list[str]
) -> dict:
    result: dict = {"side": name}
    port = free_port()
    cli("run", "-d", "--name", "bench-sink", "-p", f"{port}:5001", "busybox", "sh", "-c", SINK)
    try:
        push_through(port, 8)  # warm-up, and waits for the sink to listen
        result["published_port_MBps"] = [push_through(port, mib) for _ in range(repeat)]
        sink_ip = cli("inspect", "--format", "{{.NetworkSettings.IPAddress}}", "bench-sink").strip()
        rates = []
        for _ in range(repeat):
            out = subprocess.run(
                [*cli.argv, "run", "--rm", "busybox", "sh", "-c", SOURCE.format(mib=mib, ip=sink_ip)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            rates.append(timed_rate(out.stderr + out.stdout, mib))
        result["container_to_container_MBps"] = rates
        # latency through the API itself (no client start-up: the CLIs differ by ~80 ms there)
        create, connect = [], []
        cli("run", "-d", "--name", "bench-idle", "busybox", "sleep", "600")
        for index in range(repeat):
            net = f"bench-net-{index}"
            body = {
                "Name": net,
                "Driver": "bridge",
                "IPAM": {"Driver": "default", "Config": [{"Subnet": latency_subnets[index]}]},
            }
            start = time.perf_counter()
            engine_api.request(cli.socket, "POST", "/networks/create", body=body)
            create.append(time.perf_counter() - start)
            start = time.perf_counter()
            engine_api.request(
                cli.socket, "POST", f"/networks/{net}/connect", body={"Container": "bench-idle"}
            )
            connect.append(time.perf_counter() - start)
            cli("network", "disconnect", net, "bench-idle")
            cli("network", "rm", net)
        result["api_network_create_s"] = create
        result["api_network_connect_s"] = connect
    finally:
        cli("rm", "-f", "bench-sink", "bench-idle", check=False)
        for index in range(repeat):
            cli("network", "rm", f"bench-net-{index}", check=False)
    return result


@contextmanager
def pyengine_side(command: tuple[str, ...], rootfs: Path):
    from pyengine_net_bridge.plugin import read_state, remove_all

    with ExitStack() as stack:
        engine = stack.enter_context(pyengine_daemon.pyengine_daemon(command))
        bridge_root = Path(engine.data_root) / "network" / "bridge"
        state: dict = {}

        def cleanup() -> None:
            remove_all(bridge_root, state)

        stack.callback(cleanup)  # runs after the daemon's teardown deleted the data root
        dockerd.load_busybox_image(engine.socket, rootfs, docker_cli=command)
        try:
            yield Client([*command, "-H", engine.host], engine.socket)
        finally:
            state.update(read_state(bridge_root))


@contextmanager
def docker_side(docker_cli: tuple[str, ...], rootfs: Path, subnet: str):
    bridge = "pdkbench0"
    gateway = subnet.rsplit(".", 1)[0] + ".1/24"
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", gateway, "dev", bridge], check=True)
        subprocess.run(["ip", "link", "set", bridge, "up"], check=True)
        with dockerd.private_dockerd(extra_args=[f"--bridge={bridge}", "--userland-proxy=true"]) as docker:
            dockerd.load_busybox_image(docker.socket, rootfs, docker_cli=docker_cli)
            yield Client([*docker_cli, "-H", docker.host], docker.socket)
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pyengine", default="pyengine")
    parser.add_argument("--docker-cli", default="docker")
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-docker", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    subnets = free_subnets(2 + 2 * args.repeat)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-net-") as workdir:
        rootfs = dockerd.make_busybox_rootfs(f"{workdir}/rootfs.tar")
        with pyengine_side(pyengine_daemon.split_command(args.pyengine), rootfs) as cli:
            results.append(
                measure_side("pyengine", cli, subnets[0], args.mib, args.repeat, subnets[2 : 2 + args.repeat])
            )
        if not args.no_docker and dockerd.dockerd_available():
            with docker_side(
                tuple(pyengine_daemon.split_command(args.docker_cli)), rootfs, subnets[1]
            ) as cli:
                results.append(
                    measure_side("docker", cli, subnets[1], args.mib, args.repeat, subnets[2 + args.repeat :])
                )
    keys = [
        "published_port_MBps",
        "container_to_container_MBps",
        "api_network_create_s",
        "api_network_connect_s",
    ]
    print(
        f"{'':32}"
        + "".join(f"{r['side']:>14}" for r in results)
        + ("   pyengine/docker" if len(results) == 2 else "")
    )
    for key in keys:
        values = [median(r[key]) for r in results]
        line = f"{key:32}" + "".join(f"{v:14.3f}" for v in values)
        if len(values) == 2 and values[1]:
            line += f"   {values[0] / values[1]:.2f}x"
        print(line)
    print("MBps: higher is better; _s (median seconds): lower is better")
    print(
        "published port: pyengine = kernel DNAT (nftables); docker = docker-proxy (iptables off, see --help)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
