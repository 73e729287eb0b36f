#!/usr/bin/env bash
# Populates ROOTFS with the e2e suite's nonewprivs image (test/images/nonewprivs): the busybox
# userland of ../busybox plus /usr/local/bin/nnp, setuid root, which prints the effective uid.
# Usage: rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../busybox/rootfs.sh" "$rootfs"
mkdir -p "$rootfs/usr/local/bin"
gcc -static -Os -s -Wall -Wextra -o "$rootfs/usr/local/bin/nnp" "$here/nnp.c"
chmod 4755 "$rootfs/usr/local/bin/nnp"
