#!/usr/bin/env bash
# Populates ROOTFS with a busybox userland from Debian's busybox-static: /bin/busybox, one
# symlink per applet (busybox --list-full), /etc/passwd and /etc/group with root and nobody,
# and /tmp. Usage: rootfs.sh ROOTFS [BUSYBOX]
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS [BUSYBOX]}
busybox=${2:-/bin/busybox}
if ldd "$busybox" >/dev/null 2>&1; then # ldd fails on static executables
	echo "rootfs.sh: $busybox is not statically linked (install busybox-static)" >&2
	exit 1
fi

mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,home,var}
install -m 0755 "$busybox" "$rootfs/bin/busybox"
while read -r applet; do
	[[ -n $applet && $applet != bin/busybox ]] || continue
	mkdir -p "$rootfs/$(dirname "$applet")"
	ln -sfn /bin/busybox "$rootfs/$applet"
done < <("$busybox" --list-full)

cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
GROUP
chmod 0644 "$rootfs/etc/passwd" "$rootfs/etc/group"
find "$rootfs" -type d -exec chmod 0755 {} +
chmod 1777 "$rootfs/tmp"
chmod 0700 "$rootfs/root"
