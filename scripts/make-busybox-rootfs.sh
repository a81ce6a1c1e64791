#!/bin/bash
# Build a minimal busybox root file system as a plain tar, for `import` into
# pyengine or Docker (nothing comes from Docker Hub).
#
#   scripts/make-busybox-rootfs.sh DEST.tar
#
# The tar is deterministic: sorted entries, mtime 0, numeric owner 0:0, no
# atime/ctime headers, so the same host busybox gives the same digest.
set -euo pipefail

if [[ $# -ne 1 ]]; then
    echo "usage: $0 DEST.tar" >&2
    exit 2
fi
dest=$1
busybox_bin=${BUSYBOX:-/bin/busybox}

if [[ ! -x $busybox_bin ]]; then
    echo "$0: $busybox_bin not found; install Debian's busybox-static" >&2
    exit 1
fi
# A dynamically linked busybox would not run in a root with no libc.
if ! "$busybox_bin" --list >/dev/null 2>&1 || ldd "$busybox_bin" >/dev/null 2>&1; then
    echo "$0: $busybox_bin is not a static busybox; install busybox-static" >&2
    exit 1
fi

umask 022
work=$(mktemp -d "${TMPDIR:-/tmp}/busybox-rootfs.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

mkdir -p "$root"/{bin,dev,etc,home,proc,root,sbin,sys,tmp,var,usr/bin,usr/sbin}
chmod 1777 "$root/tmp"
chmod 0700 "$root/root"

install -m 0755 "$busybox_bin" "$root/bin/busybox"
# busybox-static picks the applet from argv[0]. Hard links, as in the official busybox image:
# one inode for all applets, which makes copying the root file system cheap.
while read -r applet; do
    [[ -z $applet || $applet == busybox ]] && continue
    ln "$root/bin/busybox" "$root/bin/$applet"
done < <("$busybox_bin" --list)

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
daemon:x:1:
tty:x:5:
wheel:x:10:root
user:x:1000:
nogroup:x:65534:
GROUP
chmod 0644 "$root/etc/passwd" "$root/etc/group"

mkdir -p "$(dirname "$dest")"
tar --create --file="$dest.tmp" --directory="$root" \
    --format=posix --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
    bin dev etc home proc root sbin sys tmp usr var
mv -f "$dest.tmp" "$dest"
