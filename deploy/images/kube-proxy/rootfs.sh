#!/usr/bin/env bash
# Populates ROOTFS with the kubeadm cluster's kube-proxy image: a Debian bookworm userland
# (mmdebstrap, variant essential) with the programs kube-proxy's iptables mode runs
# (iptables, iptables-save/-restore and their ip6tables twins from the iptables package,
# conntrack) and /usr/local/bin/kube-proxy, the project's build from the pinned module (the
# path kubeadm's kube-proxy DaemonSet runs). The host is bookworm too, so the glibc the binary
# was linked against is the image's.
# Usage: KUBE_PROXY_BIN=PATH rootfs.sh ROOTFS   (needs root: mmdebstrap's root mode)
set -euo pipefail
rootfs=${1:?usage: KUBE_PROXY_BIN=PATH rootfs.sh ROOTFS}
kube_proxy=${KUBE_PROXY_BIN:?KUBE_PROXY_BIN must name the kube-proxy binary}
suite=${KUBE_PROXY_SUITE:-bookworm}
mirror=${KUBE_PROXY_MIRROR:-http://deb.debian.org/debian}

# shellcheck disable=SC2016 # the hook's $1 is expanded by mmdebstrap's shell
mmdebstrap --quiet --mode=root --variant=essential --include=iptables,conntrack \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/etc/machine-id' \
	"$suite" "$rootfs" "$mirror"
install -m 0755 "$kube_proxy" "$rootfs/usr/local/bin/kube-proxy"
