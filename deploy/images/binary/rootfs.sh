#!/usr/bin/env bash
# Populates ROOTFS with one program of the project's own Go builds and what it needs to run:
# the binary at IMAGE_BINARY_AT and, when it is dynamically linked (cgo), the shared libraries
# ldd names, at their own paths and with the dynamic loader, plus an empty sticky /tmp. The
# kubeadm cluster's images of etcd, kube-apiserver, kube-controller-manager, kube-scheduler
# (as /usr/local/bin/NAME, the name kubeadm's static pod manifests run) and coredns (/coredns,
# the entrypoint its Deployment expects) are made this way from the binaries `cluster up`
# builds.
# Usage: IMAGE_BINARY=PATH IMAGE_BINARY_AT=/PATH/IN/IMAGE rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: IMAGE_BINARY=PATH IMAGE_BINARY_AT=PATH rootfs.sh ROOTFS}
binary=${IMAGE_BINARY:?IMAGE_BINARY must name the program}
at=${IMAGE_BINARY_AT:?IMAGE_BINARY_AT must say where it goes in the image}
[[ $at == /* ]] || {
	echo "rootfs.sh: IMAGE_BINARY_AT must be absolute, got '$at'" >&2
	exit 2
}

mkdir -p "$rootfs$(dirname "$at")" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
install -m 0755 "$binary" "$rootfs$at"
# ldd prints "name => /path (addr)" for each library and "/path (addr)" for the loader; a
# static binary prints "not a dynamic executable" (and exits 1).
if libs=$(ldd "$binary" 2>/dev/null); then
	awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$libs" |
		while read -r lib; do
			cp -L --parents "$lib" "$rootfs/"
		done
fi
