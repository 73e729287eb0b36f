#!/usr/bin/env bash
# Populates ROOTFS with the kind node image of deploy/kind: a Debian userland (mmdebstrap)
# that boots systemd in a privileged container, with containerd, runc and the CNI plugins
# from Debian; kubeadm, kubectl and crictl of the project's builds; minikubelet installed as
# the node's kubelet (kubelet.service, the unit kubeadm restarts); and, in containerd's store
# under /var/lib/containerd, the images kubeadm and the node's addons run, imported from the
# project's OCI layouts so that nothing is ever pulled.
#
# Usage (root: mmdebstrap's root mode, and a containerd run over ROOTFS to import images):
#   NODE_VERSION=v1.35.4 MINIKUBELET_BIN=... MINIKUBELET_CNI_BIN=... KUBEADM_BIN=... \
#   KUBECTL_BIN=... CRICTL_BIN=... NODE_IMAGES="REF=OCI_LAYOUT_DIR ..." rootfs.sh ROOTFS
set -euo pipefail
rootfs=${1:?usage: rootfs.sh ROOTFS (see the header)}
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
systemd_units=$here/../../systemd
suite=${NODE_SUITE:-bookworm}
mirror=${NODE_MIRROR:-http://deb.debian.org/debian}
: "${NODE_VERSION:?}" "${MINIKUBELET_BIN:?}" "${MINIKUBELET_CNI_BIN:?}" "${KUBEADM_BIN:?}"
: "${KUBECTL_BIN:?}" "${CRICTL_BIN:?}" "${NODE_IMAGES:?}"

packages=(
	systemd systemd-sysv dbus
	containerd runc containernetworking-plugins
	iproute2 iptables conntrack ethtool socat kmod procps util-linux mount
	ca-certificates libseccomp2
)
# shellcheck disable=SC2016 # the hook's $1 is expanded by mmdebstrap's shell
mmdebstrap --quiet --mode=root --variant=minbase --include="$(
	IFS=,
	echo "${packages[*]}"
)" \
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/info/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
	"$suite" "$rootfs" "$mirror"

# The programs: minikubelet as /usr/bin/kubelet (kubeadm's preflight and kind run `kubelet`),
# its CNI delegate beside Debian's plugins, the project's kubeadm, kubectl and crictl.
install -m 0755 "$MINIKUBELET_BIN" "$rootfs/usr/bin/kubelet"
install -m 0755 "$MINIKUBELET_CNI_BIN" "$rootfs/usr/lib/cni/minikubelet-cni"
install -m 0755 "$KUBEADM_BIN" "$rootfs/usr/bin/kubeadm"
install -m 0755 "$KUBECTL_BIN" "$rootfs/usr/bin/kubectl"
install -m 0755 "$CRICTL_BIN" "$rootfs/usr/bin/crictl"
install -m 0755 "$here/entrypoint" "$here/kind-node-routes" "$rootfs/usr/local/bin/"

# Configuration.
install -D -m 0644 "$here/containerd-config.toml" "$rootfs/etc/containerd/config.toml"
install -D -m 0644 "$here/10-minikubelet-cni.conflist" "$rootfs/etc/cni/net.d/10-minikubelet-cni.conflist"
install -D -m 0644 "$here/10-kind-pods.conflist" "$rootfs/etc/minikubelet/cni/net.d/10-kind-pods.conflist"
install -D -m 0644 "$here/90-kind-node.conf" "$rootfs/etc/sysctl.d/90-kind-node.conf"
install -D -m 0644 "$here/crictl.yaml" "$rootfs/etc/crictl.yaml"
install -D -m 0644 "$systemd_units/kubelet.service" "$rootfs/etc/systemd/system/kubelet.service"
install -D -m 0644 "$here/20-kind-node.conf" "$rootfs/etc/systemd/system/kubelet.service.d/20-kind-node.conf"
mkdir -p "$rootfs/etc/systemd/system/multi-user.target.wants" "$rootfs/var/lib/kubelet" "$rootfs/etc/kubernetes/manifests"
ln -sfn /etc/systemd/system/kubelet.service "$rootfs/etc/systemd/system/multi-user.target.wants/kubelet.service"
# Units a container has no use for (no consoles to log in on, no hardware).
for unit in getty.target systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
	systemd-remount-fs.service sys-kernel-debug.mount sys-kernel-tracing.mount; do
	ln -sfn /dev/null "$rootfs/etc/systemd/system/$unit"
done
# What kind reads of a node image.
install -D -m 0644 /dev/stdin "$rootfs/kind/version" <<<"$NODE_VERSION"
install -D -m 0644 "$here/manifests/default-cni.yaml" "$rootfs/kind/manifests/default-cni.yaml"
: >"$rootfs/etc/machine-id"

# The images, imported by a containerd of this script's own whose root is the image's
# /var/lib/containerd (the CRI plugin off: nothing but the content store and snapshots).
tmp=$(mktemp -d)
pid=
cleanup() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid"
		wait "$pid" || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
cat >"$tmp/config.toml" <<TOML
version = 2
root = "$rootfs/var/lib/containerd"
state = "$tmp/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$tmp/containerd.sock"
TOML
containerd --config "$tmp/config.toml" >"$tmp/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
	ctr --address "$tmp/containerd.sock" version >/dev/null 2>&1 && break
	kill -0 "$pid" 2>/dev/null || {
		cat "$tmp/containerd.log" >&2
		exit 1
	}
	sleep 0.1
done
for entry in $NODE_IMAGES; do
	ref=${entry%%=*} layout=${entry#*=}
	tar -C "$layout" -cf "$tmp/image.tar" .
	tag=$(jq -r '.manifests[0].annotations["org.opencontainers.image.ref.name"]' "$layout/index.json")
	ctr --address "$tmp/containerd.sock" -n k8s.io images import --base-name "${ref%:*}" "$tmp/image.tar" >/dev/null
	[[ ${ref##*:} == "$tag" ]] ||
		ctr --address "$tmp/containerd.sock" -n k8s.io images tag --force "${ref%:*}:$tag" "$ref" >/dev/null
	printf 'imported %s\n' "$ref"
done
ctr --address "$tmp/containerd.sock" -n k8s.io images list -q
