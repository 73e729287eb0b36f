#!/usr/bin/env bash
# Populates ROOTFS with the grpc-health image's files: one static /grpc-health built from
# this directory's Go module (google.golang.org/grpc from the module proxy).
# Usage: rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$rootfs"
(cd "$here" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
	go build -trimpath -ldflags "-s -w" -o "$rootfs/grpc-health" .)
chmod 0755 "$rootfs" "$rootfs/grpc-health"
