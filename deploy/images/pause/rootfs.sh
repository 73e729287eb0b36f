#!/usr/bin/env bash
# Populates ROOTFS with the pause image's files: a single static /pause.
# Usage: rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$rootfs"
gcc -static -Os -s -Wall -Wextra -o "$rootfs/pause" "$here/pause.c"
chmod 0755 "$rootfs" "$rootfs/pause"
