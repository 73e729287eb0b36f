#!/usr/bin/env bash
# Populates ROOTFS with the e2e suite's agnhost image, as test/images/agnhost/Dockerfile of the
# pinned k8s.io/kubernetes describes it, from Debian packages instead of Alpine's:
#   - a Debian bookworm userland (mmdebstrap, variant essential) plus the tools the suite
#     execs in agnhost pods: bash, curl, netcat-openbsd (nc with -u/-z), iproute2 (ip, ss),
#     bind9-dnsutils (dig, nslookup, host), iperf, procps;
#   - /agnhost (AGNHOST_BIN, built from k8s.io/kubernetes/test/images/agnhost) and the
#     /agnhost-2 link the entrypoint tests use;
#   - /localhost.crt and /localhost.key, the pair agnhost's porter and netexec open for
#     HTTPS (a fresh self-signed pair for localhost, 127.0.0.1 and ::1);
#   - /uploads (netexec), user-defined-in-image (uid 1000) in group-defined-in-image (gid 50000).
# Not included: coredns and the fake registry's /var/registry (fetched from GitHub and a
# registry upstream; no spec of the node focus uses them).
# Usage: AGNHOST_BIN=PATH rootfs.sh ROOTFS   (needs root: mmdebstrap's root mode)
set -euo pipefail
rootfs=${1:?usage: AGNHOST_BIN=PATH rootfs.sh ROOTFS}
agnhost=${AGNHOST_BIN:?AGNHOST_BIN must name the agnhost binary}
suite=${AGNHOST_SUITE:-bookworm}
mirror=${AGNHOST_MIRROR:-http://deb.debian.org/debian}

packages=bash,curl,ca-certificates,netcat-openbsd,iproute2,bind9-dnsutils,iperf,procps
# shellcheck disable=SC2016 # the hook's $1 is expanded by mmdebstrap's shell
mmdebstrap --quiet --mode=root --variant=essential --include="$packages" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--dpkgopt='path-include=/usr/share/locale/locale.alias' \
	--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/* "$1"/etc/machine-id' \
	"$suite" "$rootfs" "$mirror"

install -m 0755 "$agnhost" "$rootfs/agnhost"
ln -sfn agnhost "$rootfs/agnhost-2"
ln -sfn /usr/bin/iperf "$rootfs/usr/local/bin/iperf"
mkdir -p "$rootfs/uploads"

openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj '/O=minikubelet e2e' \
	-addext 'subjectAltName=DNS:localhost,DNS:example.com,IP:127.0.0.1,IP:::1' \
	-keyout "$rootfs/localhost.key" -out "$rootfs/localhost.crt" 2>/dev/null
chmod 0644 "$rootfs/localhost.crt" "$rootfs/localhost.key"

printf 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >>"$rootfs/etc/passwd"
printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >>"$rootfs/etc/group"
printf 'user-defined-in-image:!:0:0:99999:7:::\n' >>"$rootfs/etc/shadow"
mkdir -p "$rootfs/home/user-defined-in-image"
