#!/usr/bin/env bash
# Populates ROOTFS with the e2e suite's busybox image (test/images/busybox: upstream's busybox
# image, whose applets all live in /bin): the busybox userland of ../busybox, plus a /bin link
# for every applet that Debian's layout puts in /sbin, /usr/bin or /usr/sbin (the suite execs
# /bin/sysctl, for one).
# Usage: rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../busybox/rootfs.sh" "$rootfs"
while read -r applet; do
	[[ -e $rootfs/bin/$(basename "$applet") || -L $rootfs/bin/$(basename "$applet") ]] && continue
	ln -s busybox "$rootfs/bin/$(basename "$applet")"
done < <("$rootfs/bin/busybox" --list-full)
