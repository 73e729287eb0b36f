#!/usr/bin/env bash
# Populates ROOTFS with the e2e suite's nonroot image (test/images/nonroot): a userland whose
# image config says USER 1234 (set by the caller with OCI_USER). Upstream's base is Debian's
# debian-base; the specs only run `id -u` in it, so the busybox userland of ../busybox serves.
# Usage: rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$here/../busybox/rootfs.sh" "$rootfs"
