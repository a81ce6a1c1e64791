"""Docker dressed up as pyengine, to run the benchmarks end to end before pyengine's daemon exists.

docker_as_pyengine.py daemon --data-root D --exec-root E -H unix://SOCK [--storage-driver X]
    becomes dockerd with those roots (no network side effects, its own containerd namespace,
    like pyengine.testing.dockerd's; the default cgroup parent, whose per-container cgroups go with them);
docker_as_pyengine.py <anything else>
    becomes the docker CLI with the same arguments.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyengine.testing.dockerd import DOCKERD, NO_NETWORK_SIDE_EFFECTS  # noqa: E402


def main() -> None:
    args = sys.argv[1:]
    if args[:1] != ["daemon"]:
        os.execvp("docker", ["docker", *args])
    options = dict(zip(args[1::2], args[2::2], strict=False))
    data_root, exec_root = options["--data-root"], options["--exec-root"]
    base = os.path.dirname(data_root)
    # containerd namespaces allow [A-Za-z0-9] words joined by . _ -; mkdtemp names may not fit.
    tag = "pe-" + hashlib.sha256(base.encode()).hexdigest()[:12]
    config = os.path.join(base, "daemon.json")
    Path(config).write_text(json.dumps({"deprecated-key-path": os.path.join(base, "key.json")}))
    dockerd_args = [
        DOCKERD,
        f"--data-root={data_root}",
        f"--exec-root={exec_root}",
        f"--host={options['-H']}",
        f"--pidfile={os.path.join(base, 'dockerd.pid')}",
        f"--config-file={config}",
        f"--containerd-namespace={tag}",
        f"--containerd-plugins-namespace={tag}-plugins",
        *NO_NETWORK_SIDE_EFFECTS,
    ]
    if "--storage-driver" in options:
        dockerd_args.append(f"--storage-driver={options['--storage-driver']}")
    os.execv(DOCKERD, dockerd_args)


if __name__ == "__main__":
    main()
