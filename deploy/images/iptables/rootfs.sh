#!/usr/bin/env bash
# Populates ROOTFS with an image for one program that programs netfilter: a Debian bookworm
# userland (mmdebstrap, variant essential) with the commands such programs run (iptables,
# iptables-save/-restore and their ip6tables twins from the iptables package, conntrack) and
# the program at IMAGE_BINARY_AT. The kubeadm cluster's kube-proxy (/usr/local/bin/kube-proxy,
# the path kubeadm's DaemonSet runs) and the kind nodes' flanneld are made this way from the
# project's builds. The host is bookworm too, so a cgo binary's glibc is the image's.
# Usage: IMAGE_BINARY=PATH IMAGE_BINARY_AT=/PATH/IN/IMAGE rootfs.sh ROOTFS   (needs root)
set -euo pipefail
rootfs=${1:?usage: IMAGE_BINARY=PATH IMAGE_BINARY_AT=PATH rootfs.sh ROOTFS}
binary=${IMAGE_BINARY:?IMAGE_BINARY must name the program}
at=${IMAGE_BINARY_AT:?IMAGE_BINARY_AT must say where it goes in the image}
suite=${IMAGE_SUITE:-bookworm}
mirror=${IMAGE_MIRROR:-http://deb.debian.org/debian}

# shellcheck disable=SC2016 # the hook's $1 is expanded by mmdebstrap's shell
mmdebstrap --quiet --mode=root --variant=essential --include=iptables,conntrack \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/etc/machine-id' \
	"$suite" "$rootfs" "$mirror"
install -D -m 0755 "$binary" "$rootfs$at"
