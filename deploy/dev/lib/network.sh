# shellcheck shell=bash
# The pod network: containerd's CNI conf dir holds only the minikubelet-cni delegate, which
# forwards every sandbox's CNI request to the agent owning the pod; the agents run the real
# chain (bridge + host-local + portmap + bandwidth) from their own conf dir.
#
# Addressing: every node gets its /24 of CLUSTER_CIDR from the controller-manager
# (Node.spec.podCIDR); pods get addresses from it but with the whole CLUSTER_CIDR as their
# on-link subnet on the one bridge mkl0 (gateway CNI_GATEWAY), so pods of all nodes on this
# machine reach each other directly. No default route, no masquerade.

# The agents' chain (the minikubelet default --cni-conf-dir, so test agents need no flag).
AGENT_CNI_CONF_DIR=/etc/minikubelet/cni/net.d
# Route files of every agent (the minikubelet default --cni-routes-dir).
CNI_ROUTES_DIR=/run/minikubelet/cni/routes
# The main agent's socket (its default --cni-socket below --root-dir STATE/agent): the
# delegate's fallback for pods without a route file.
AGENT_CNI_SOCKET=$STATE/agent/cni/minikubelet.sock
CNI_GATEWAY=10.244.0.1
CNI_DELEGATE=minikubelet-cni

# prepare_pod_network: writes both conflists (idempotent; containerd reloads its conf dir).
prepare_pod_network() {
	mkdir -p "$CNI_CONF_DIR" "$STATE/cni/ipam" "$AGENT_CNI_CONF_DIR" "$CNI_ROUTES_DIR"
	render "$TEMPLATES/10-mkl-pods.conflist.in" "$AGENT_CNI_CONF_DIR/10-mkl-pods.conflist" \
		"STATE=$STATE" "CNI_BRIDGE=$CNI_BRIDGE" "CLUSTER_CIDR=$CLUSTER_CIDR" "GATEWAY=$CNI_GATEWAY"
	render "$TEMPLATES/10-minikubelet-cni.conflist.in" "$CNI_CONF_DIR/10-minikubelet-cni.conflist" \
		"SOCKET=$AGENT_CNI_SOCKET" "ROUTES_DIR=$CNI_ROUTES_DIR"
	# The interim conflist of earlier versions (containerd ran the bridge itself).
	rm -f "$CNI_CONF_DIR/10-mkl-bridge.conflist"
}

# install_cni_delegate: puts the freshly built delegate into containerd's bin_dir (atomic).
install_cni_delegate() {
	local built=$CARGO_TARGET_DIR/release/$CNI_DELEGATE
	[[ -x $built ]] || die "cargo build succeeded but $built is missing"
	if ! cmp -s "$built" "$CNI_BIN_DIR/$CNI_DELEGATE"; then
		cp "$built" "$CNI_BIN_DIR/.$CNI_DELEGATE.tmp"
		mv -f "$CNI_BIN_DIR/.$CNI_DELEGATE.tmp" "$CNI_BIN_DIR/$CNI_DELEGATE"
		log "installed the CNI delegate $CNI_BIN_DIR/$CNI_DELEGATE"
	fi
}

# teardown_pod_network: what prepare_pod_network and install_cni_delegate added outside STATE.
teardown_pod_network() {
	rm -f "$AGENT_CNI_CONF_DIR/10-mkl-pods.conflist" "$CNI_BIN_DIR/$CNI_DELEGATE"
	rmdir "$AGENT_CNI_CONF_DIR" /etc/minikubelet/cni /etc/minikubelet 2>/dev/null || true
	rm -rf "$CNI_ROUTES_DIR"
}
