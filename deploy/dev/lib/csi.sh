# shellcheck shell=bash
# CSI for the dev cluster: builds csi-minihostpath (the project's own CSI plugin and
# plugin-registration server, deploy/go/csi-minihostpath) and csi-provisioner
# (external-provisioner, deploy/go/external-provisioner) into CACHE/bin. Its CSIDriver object is
# manifests/50-csi-minihostpath.yaml, its StorageClass manifests/51-csi-minihostpath-sc.yaml.
#
# Cluster-wide (components of `up`): csi-controller, a csi-minihostpath instance serving only
# the Controller service on CSI_CONTROLLER_SOCK, and csi-provisioner pointed at it with the admin
# kubeconfig. Volumes are directories in CSI_VOLUMES_DIR, shared with every node instance.
# The node side runs per agent: tests start one process per node name with
# --registration-dir=ROOT/plugins_registry --volumes-dir=CSI_VOLUMES_DIR (agent/tests/cluster/pod_csi.rs).
#
# csi-driver-host-path and node-driver-registrar are not used: the module proxy reachable from
# here does not serve them (403).

CSI_DRIVER_NAME=minihostpath.csi.minikubelet.dev
CSI_VOLUMES_DIR=$STATE/csi-minihostpath/volumes
CSI_CONTROLLER_SOCK=$RUN/csi-minihostpath/controller.sock
CSI_PROVISIONER_PORT=${MKL_CSI_PROVISIONER_PORT:-9809}
EXTERNAL_PROVISIONER_VERSION=$(go_mod_version external-provisioner github.com/kubernetes-csi/external-provisioner/v6)

# The module's version: the sha256 of its sources, so an edit rebuilds the binary.
csi_minihostpath_version() {
	cat "$GO_DIR/csi-minihostpath"/go.mod "$GO_DIR/csi-minihostpath"/*.go | sha256sum | cut -c1-12
}

build_csi_minihostpath() {
	local out
	out=$BIN/csi-minihostpath-$(csi_minihostpath_version)
	if [[ ! -x $out ]]; then
		require_go csi-minihostpath
		log "building csi-minihostpath"
		mkdir -p "$BIN"
		GOFLAGS=-mod=mod go_build csi-minihostpath csi-minihostpath -trimpath -ldflags "-s -w" -o "$out.tmp" .
		mv -f "$out.tmp" "$out"
	fi
	mkdir -p "$BIN/current"
	ln -sfn "../$(basename "$out")" "$BIN/current/csi-minihostpath"
}

csi_minihostpath_bin() { printf '%s/csi-minihostpath-%s\n' "$BIN" "$(csi_minihostpath_version)"; }
csi_provisioner_bin() { printf '%s/csi-provisioner-%s\n' "$BIN" "$EXTERNAL_PROVISIONER_VERSION"; }

build_external_provisioner() {
	local out
	out=$(csi_provisioner_bin)
	if [[ ! -x $out ]]; then
		require_go csi-provisioner
		log "building csi-provisioner $EXTERNAL_PROVISIONER_VERSION (first build takes minutes)"
		mkdir -p "$BIN"
		CGO_ENABLED=0 go_build external-provisioner csi-provisioner -trimpath \
			-ldflags "-s -w -X main.version=$EXTERNAL_PROVISIONER_VERSION" \
			-o "$out.tmp" github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner
		mv -f "$out.tmp" "$out"
	fi
	mkdir -p "$BIN/current"
	ln -sfn "../$(basename "$out")" "$BIN/current/csi-provisioner"
}

# --- components: csi-controller and csi-provisioner (see components.sh) ---------------------

prepare_csi-controller() {
	build_csi_minihostpath
	mkdir -p "$CSI_VOLUMES_DIR" "$(dirname "$CSI_CONTROLLER_SOCK")" "$STATE/csi-minihostpath/controller"
}

csi-controller_cmd() {
	# shellcheck disable=SC2034 # CMD is read by ensure_component
	CMD=("$(csi_minihostpath_bin)"
		--controller
		--drivername="$CSI_DRIVER_NAME"
		--endpoint="$CSI_CONTROLLER_SOCK"
		--state-dir="$STATE/csi-minihostpath/controller"
		--volumes-dir="$CSI_VOLUMES_DIR")
}

# A real CSI Probe over the socket: an empty ProbeRequest is the 5-byte gRPC frame 00 00000000.
health_csi-controller() {
	[[ -S $CSI_CONTROLLER_SOCK ]] || return 1
	printf '\0\0\0\0\0' | curl -sS --max-time 3 --http2-prior-knowledge --unix-socket "$CSI_CONTROLLER_SOCK" \
		-H 'content-type: application/grpc' -H 'te: trailers' --data-binary @- -D - -o /dev/null \
		http://localhost/csi.v1.Identity/Probe 2>/dev/null | grep -q '^grpc-status: 0'
}

prepare_csi-provisioner() { build_external_provisioner; }

# --extra-create-metadata: CreateVolume gets csi.storage.k8s.io/pvc/name, pvc/namespace and
# pv/name as parameters. Topology is GA (on by default), so WaitForFirstConsumer claims are
# provisioned for the node in their volume.kubernetes.io/selected-node annotation.
csi-provisioner_cmd() {
	# shellcheck disable=SC2034 # CMD is read by ensure_component
	CMD=("$(csi_provisioner_bin)"
		--csi-address="$CSI_CONTROLLER_SOCK"
		--kubeconfig="$STATE/admin.kubeconfig"
		--leader-election=false
		--extra-create-metadata
		--timeout=30s
		--retry-interval-start=500ms
		--retry-interval-max=30s
		--http-endpoint="$HOST:$CSI_PROVISIONER_PORT"
		--v=2)
}

# The HTTP endpoint starts after the provisioner has connected to the driver and read its
# capabilities.
health_csi-provisioner() { http_ok "http://$HOST:$CSI_PROVISIONER_PORT/metrics"; }

# csi-provisioner exits when it loses its connection to the driver (as in a Pod, where the
# container is restarted): starting either component starts both, restarting csi-provisioner
# when csi-controller was (re)started under it; stopping csi-controller stops both.
start_csi() {
	local before after
	before=$(component_pid csi-controller || true)
	ensure_component csi-controller
	after=$(component_pid csi-controller || true)
	if [[ $before != "$after" ]] && component_pid csi-provisioner >/dev/null; then
		log "csi-provisioner: restarting (csi-controller restarted under it)"
		stop_component csi-provisioner
	fi
	ensure_component csi-provisioner
}

stop_csi_controller() {
	stop_component csi-provisioner
	stop_component csi-controller
}
