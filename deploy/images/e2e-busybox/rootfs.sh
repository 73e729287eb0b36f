#!/usr/bin/env bash
# Populates ROOTFS with the e2e suite's busybox image (test/images/busybox: upstream's busybox
# image, whose applets all live in /bin): the busybox userland of ../busybox around the upstream
# build E2E_BUSYBOX_BIN (lib/conformance.sh builds it), plus a /bin link for every applet whose
# listed path is elsewhere (the suite execs /bin/sysctl, for one).
# Usage: E2E_BUSYBOX_BIN=BUSYBOX rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: E2E_BUSYBOX_BIN=BUSYBOX rootfs.sh ROOTFS}
busybox=${E2E_BUSYBOX_BIN:?E2E_BUSYBOX_BIN names the busybox binary}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../busybox/rootfs.sh" "$rootfs" "$busybox"
while read -r applet; do
	[[ -e $rootfs/bin/$(basename "$applet") || -L $rootfs/bin/$(basename "$applet") ]] && continue
	ln -s busybox "$rootfs/bin/$(basename "$applet")"
done < <("$rootfs/bin/busybox" --list-full)
