#!/usr/bin/env bash
# Install pyengine (the core and its overlay and vfs storage drivers) into /opt/pyengine, put `pyengine` on PATH,
# and make a local `busybox` image from Debian's busybox-static. Needs root; no internet beyond the
# package registries. Idempotent: run it again after an update.
set -euo pipefail
cd "$(dirname "$0")"
prefix=${PYENGINE_PREFIX:-/opt/pyengine}
export DEBIAN_FRONTEND=noninteractive

need_packages=()
busybox --list >/dev/null 2>&1 && ! ldd "$(command -v busybox)" >/dev/null 2>&1 || need_packages+=(busybox-static)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_packages+=(python3-venv)
ldconfig -p | grep -q libnftables.so.1 || need_packages+=(libnftables1)
if ((${#need_packages[@]})); then
    apt-get update -qq
    apt-get install -y -qq "${need_packages[@]}" >/dev/null
fi

[ -x "$prefix/bin/python" ] || python3 -m venv "$prefix"
"$prefix/bin/pip" install -q --disable-pip-version-check "./core[fast]" ./plugins/storage_overlay \
    ./plugins/storage_vfs ./plugins/volume_local ./plugins/net_bridge ./plugins/net_remote
ln -sf "$prefix/bin/pyengine" /usr/local/bin/pyengine

# The local busybox image (nothing comes from Docker Hub). `pyengine` starts the daemon if none runs.
if ! pyengine inspect --type image busybox:latest >/dev/null 2>&1; then
    rootfs=$(mktemp --suffix=.tar)
    trap 'rm -f "$rootfs"' EXIT
    bash scripts/make-busybox-rootfs.sh "$rootfs"
    pyengine import -c 'CMD ["sh"]' "$rootfs" busybox:latest >/dev/null
fi
echo "pyengine installed: $(pyengine --version)"
