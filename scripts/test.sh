#!/usr/bin/env bash
# Run pyengine's tests on the real kernel (as root): installs what they need, then pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -k tty -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

need_packages=()
busybox --list >/dev/null 2>&1 && ! ldd "$(command -v busybox)" >/dev/null 2>&1 || need_packages+=(busybox-static)
[ -x /usr/sbin/dockerd ] && command -v docker >/dev/null || need_packages+=(docker.io)  # CLI + dockerd (interop)
command -v skopeo >/dev/null || need_packages+=(skopeo)
command -v mkfs.btrfs >/dev/null || need_packages+=(btrfs-progs)
[ -x /usr/bin/tini-static ] && command -v ps >/dev/null || need_packages+=(tini procps)  # --init, top
[ -x /usr/bin/docker-registry ] || need_packages+=(docker-registry)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages+=(python3-venv)
ldconfig -p | grep -q libnftables.so.1 || need_packages+=(libnftables1)
if ((${#need_packages[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

venv=${PYENGINE_TEST_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e './core[registry,fast]' -e ./plugins/storage_overlay \
    -e ./plugins/storage_btrfs -e ./plugins/storage_vfs -e ./plugins/volume_local \
    -e ./plugins/net_bridge -e ./plugins/net_remote \
    pytest pytest-timeout docker
exec "$venv/bin/python" -m pytest "$@"
