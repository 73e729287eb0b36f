# shellcheck shell=bash
# `cluster kubeadm-init`, `kubeadm-join NAME`, `kubeadm-agent NAME`, `kubeadm-reset`: a second
# cluster, made by kubeadm the way users make one, whose nodes run minikubelet as their
# kubelet; `kubeadm-join-kubelet NAME` adds a node running the real kubelet, for comparison.
# `kubeadm init` on node mkl-kcp runs the control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) as static pods of that node's agent and deploys
# kube-proxy and CoreDNS; `kubeadm join` adds workers through the bootstrap token.
#
# A node here is what a machine is to kubeadm, made of namespaces:
#   - a network namespace (/run/netns/kadm-NAME) with one veth on the project bridge mkl-kadm
#     (10.250.0.0/24, the host side .1, the control plane .10, workers from .11), no default
#     route: the control plane's ports (6443, 2379, 10257, 10259, 10250) are the node's own and
#     kube-proxy's rules stay inside it;
#   - a mount namespace (ensure_node_namespace in join.sh) in which /etc/kubernetes,
#     /var/lib/kubelet, /var/lib/etcd, /var/log/pods and /var/log/containers are the node's
#     own directories under STATE/kubeadm/nodes/NAME;
#   - its own containerd (kubelet garbage-collects what it does not own, so nodes never share
#     one), whose pulls of REGISTRY go to the second registry process serving the same store
#     on the bridge (10.250.0.1:5000), and whose CNI config is the minikubelet-cni delegate
#     to the node's agent; the agent runs the bridge chain on the node's podCIDR (on a kubelet
#     node containerd runs that chain itself);
#   - pods have routes to the cluster's pod and Service ranges and to the nodes' subnet via
#     their node's bridge, and no default route;
#   - the harness routes every node's podCIDR to its address in the other nodes, as a
#     routing CNI would (kindnet does the same), so pods reach pods on other nodes.
# The images kubeadm pulls (imageRepository REGISTRY/kubeadm) are the project's builds:
# deploy/images/binary (etcd, kube-*, coredns) and deploy/images/iptables (kube-proxy).
# There is no systemd here: kubeadm's kubelet-start phase warns that it cannot restart
# kubelet.service and waits; the harness then starts minikubelet with the unit's command line
# from the files kubeadm wrote (joined_agent_cmd), as for `cluster join`.

KUBEADM_NODES=$STATE/kubeadm
KUBEADM_RUN=$RUN/kubeadm
KUBEADM_BRIDGE=mkl-kadm
KUBEADM_NET=10.250.0
KUBEADM_GATEWAY=$KUBEADM_NET.1
KUBEADM_REGISTRY=$KUBEADM_GATEWAY:5000
KUBEADM_CP=mkl-kcp
KUBEADM_CP_IP=$KUBEADM_NET.10
KUBEADM_POD_SUBNET=10.245.0.0/16
KUBEADM_SERVICE_SUBNET=10.96.0.0/12
KUBEADM_IMAGE_REPO=$REGISTRY/kubeadm
KUBEADM_PAUSE_IMAGE=$KUBEADM_IMAGE_REPO/pause:3.10.1
KUBEADM_ADMIN=$KUBEADM_NODES/admin.conf
KUBEADM_TIMEOUT=${MKL_KUBEADM_TIMEOUT:-600}
# kube-controller-manager's --cluster-signing-duration (default: its own, a year); tests set
# a few minutes to see client certificates rotate.
KUBEADM_SIGNING_DURATION=${MKL_KUBEADM_SIGNING_DURATION:-}
# The host paths a kubeadm node has of its own.
KUBEADM_MOUNT_POINTS=(/etc/kubernetes /var/lib/kubelet /var/lib/etcd /var/log/pods /var/log/containers)
# Preflight errors of this machine (as for `cluster join`): cgroup v1.
KUBEADM_IGNORED_PREFLIGHT=(SystemVerification)

kadm_dir() { printf '%s/nodes/%s\n' "$KUBEADM_NODES" "$1"; }
kadm_run() { printf '%s/%s\n' "$KUBEADM_RUN" "$1"; }
kadm_netns() { printf 'kadm-%s\n' "$1"; }
kadm_mntns() { printf 'kadm-%s\n' "$1"; }
kadm_socket() { printf '%s/containerd/containerd.sock\n' "$(kadm_run "$1")"; }
# kadm_kind NAME: the node's kubelet, minikubelet or (the comparison node) kubelet.
kadm_kind() { cat "$(kadm_dir "$1")/kubelet-kind" 2>/dev/null || echo minikubelet; }
kadm_agent() { printf 'kadm-%s-%s\n' "$1" "$(kadm_kind "$1")"; }
kadm_agent_bin() {
	case $(kadm_kind "$1") in
	kubelet) bin_path kubelet ;;
	*) minikubelet_bin ;;
	esac
}
# A kubeadm node's cgroup root: its own, so that its kubepods (node allocatable, QoS shares,
# kubelet's orphaned-pod cleanup) is never another node's or the dev agent's (/kubepods).
kadm_cgroup_root() { printf 'kubelet-%s\n' "$1"; }
kadm_containerd() { printf 'kadm-%s-containerd\n' "$1"; }
kadm_nodes() { find "$KUBEADM_NODES/nodes" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' 2>/dev/null | sort; }

# kadm_enter NAME: fills ENTER with the nsenter prefix that runs a command on node NAME.
kadm_enter() {
	ENTER=(nsenter --net="/run/netns/$(kadm_netns "$1")" --mount="$MNTNS_DIR/$(kadm_mntns "$1")" --)
}

kadm_kubectl() { KUBECTL_KUBECONFIG=$KUBEADM_ADMIN kubectl_ "$@"; }

kadm_crictl() {
	"$(bin_path crictl)" --runtime-endpoint "unix://$(kadm_socket "$1")" \
		--image-endpoint "unix://$(kadm_socket "$1")" --timeout 30s "${@:2}"
}

valid_kadm_name() {
	[[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?$ ]] ||
		die "node name '$1' must be a DNS label of at most 12 characters (its veth is kv-NAME)"
}

# --- images -----------------------------------------------------------------------------------

# Packages beyond `cluster up`'s: mmdebstrap makes the kube-proxy image's Debian userland.
KUBEADM_PACKAGES=(
	"mmdebstrap mmdebstrap"
)

# kubeadm_images: the images `kubeadm config images list` names for imageRepository
# REGISTRY/kubeadm, built from the project's binaries (images.sh: build_kubeadm_images) and
# pushed (each skipped when unchanged).
kubeadm_images() {
	local image
	install_missing "${KUBEADM_PACKAGES[@]}"
	ensure_binaries # kube-proxy is built with the others
	build_coredns
	build_kubeadm_images
	for image in "${KUBEADM_IMAGE_SET[@]}"; do
		push_image "${image% *}" "${image#* }"
	done
}

# --- the nodes' network -------------------------------------------------------------------------

# kadm_bridge: the bridge of the kubeadm nodes, and the registry on its host address.
kadm_bridge() {
	if ! ip link show "$KUBEADM_BRIDGE" >/dev/null 2>&1; then
		ip link add "$KUBEADM_BRIDGE" type bridge
		ip addr add "$KUBEADM_GATEWAY/24" dev "$KUBEADM_BRIDGE"
	fi
	ip link set "$KUBEADM_BRIDGE" up
	mkdir -p "$KUBEADM_NODES/registry"
	render "$TEMPLATES/registry-config.yml.in" "$KUBEADM_NODES/registry/config.yml" \
		"CACHE=$CACHE" "REGISTRY=$KUBEADM_REGISTRY"
	ensure_component kadm-registry
}

# kadm_ip NAME: the node's address (kept in its directory; the control plane's is fixed).
kadm_ip() {
	local name=$1 file i
	file=$(kadm_dir "$name")/ip
	if [[ ! -s $file ]]; then
		if [[ $name == "$KUBEADM_CP" ]]; then
			i=10
		else
			i=11
			while grep -qsx "$KUBEADM_NET.$i" "$KUBEADM_NODES"/nodes/*/ip; do i=$((i + 1)); done
			((i < 250)) || die "no address left on $KUBEADM_BRIDGE"
		fi
		mkdir -p "$(dirname "$file")"
		printf '%s\n' "$KUBEADM_NET.$i" >"$file"
	fi
	cat "$file"
}

# kadm_node_network NAME: the node's network namespace, its veth on the bridge and address,
# IPv4 forwarding on (it routes its pods) and bridged pod traffic through its iptables (so
# kube-proxy's DNAT of a Service answers a pod on the same bridge).
kadm_node_network() {
	local name=$1 ns ip veth
	ns=$(kadm_netns "$name")
	veth=kv-$name
	ip=$(kadm_ip "$name")
	[[ -e /run/netns/$ns ]] || ip netns add "$ns"
	if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
		ip link delete "$veth" 2>/dev/null || true
		ip link add "$veth" type veth peer name eth0 netns "$ns"
		ip -n "$ns" addr add "$ip/24" dev eth0
	fi
	ip link set "$veth" master "$KUBEADM_BRIDGE" up
	ip -n "$ns" link set lo up
	ip -n "$ns" link set eth0 up
	# No default route: the Service range is on-link instead, so the node's own processes can
	# connect to a ClusterIP (kube-proxy's DNAT then rewrites it before the packet leaves).
	ip -n "$ns" route replace "$KUBEADM_SERVICE_SUBNET" dev eth0
	ip netns exec "$ns" sh -c 'echo 1 >/proc/sys/net/ipv4/ip_forward &&
		echo 1 >/proc/sys/net/bridge/bridge-nf-call-iptables' ||
		die "cannot set the sysctls of node $name"
}

# kadm_routes: in every node, a route to each other node's podCIDR via that node's address.
kadm_routes() {
	local node cidr addr other
	while read -r node cidr addr; do
		[[ -n $cidr && -n $addr ]] || continue
		for other in $(kadm_nodes); do
			[[ $other != "$node" && -e /run/netns/$(kadm_netns "$other") ]] || continue
			ip -n "$(kadm_netns "$other")" route replace "$cidr" via "$addr" dev eth0
		done
	done < <(kadm_kubectl get nodes -o \
		jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')
}

# --- a node: namespaces, containerd, files kubeadm reads ------------------------------------

# kadm_prepare_node NAME KIND: everything a node whose kubelet is KIND (minikubelet or
# kubelet) needs before kubeadm runs on it. A minikubelet node's containerd has the
# minikubelet-cni delegate and the agent runs the bridge chain; kubelet's containerd runs the
# same chain itself, from a conf_template it renders with the podCIDR kubelet sends.
kadm_prepare_node() {
	local name=$1 kind=$2 dir run template='' d
	dir=$(kadm_dir "$name")
	run=$(kadm_run "$name")
	ensure_node_namespace "$(kadm_mntns "$name")" "$dir" "${KUBEADM_MOUNT_POINTS[@]}"
	printf '%s\n' "$kind" >"$dir/kubelet-kind"
	kadm_node_network "$name"
	# A node joins from empty directories (kubeadm's preflight refuses existing files).
	find "$dir/etc-kubernetes" "$dir/var-lib-kubelet" "$dir/var-lib-etcd" -mindepth 1 -delete
	mkdir -p "$dir/containerd/root" "$run/containerd" "$dir/cni/net.d" "$dir/cni/agent.d" \
		"$dir/cni/ipam" "$dir/cni/routes" "$dir/cni/cache"
	render "$TEMPLATES/10-node-pods.conflist.in" "$dir/cni/agent.d/10-node-pods.conflist" \
		"CNI_BRIDGE=$CNI_BRIDGE" "IPAM_DIR=$dir/cni/ipam" "CLUSTER_CIDR=$KUBEADM_POD_SUBNET" \
		"SERVICE_CIDR=$KUBEADM_SERVICE_SUBNET" "NODE_SUBNET=$KUBEADM_NET.0/24"
	# kubelet refuses a cgroup root that does not exist (minikubelet makes it).
	for d in /sys/fs/cgroup/*/; do mkdir -p "$d$(kadm_cgroup_root "$name")"; done
	if [[ $kind == kubelet ]]; then
		template=$dir/cni/agent.d/10-node-pods.conflist
	else
		render "$TEMPLATES/10-minikubelet-cni.conflist.in" "$dir/cni/net.d/10-minikubelet-cni.conflist" \
			"SOCKET=/var/lib/kubelet/cni/minikubelet.sock" "ROUTES_DIR=$dir/cni/routes"
	fi
	render_containerd_config "$dir/containerd/config.toml" "DIR=$dir/containerd" \
		"RUNDIR=$run/containerd" "PAUSE_IMAGE=$KUBEADM_PAUSE_IMAGE" \
		"CNI_CONF_DIR=$dir/cni/net.d" "NETNS_UNDER_STATE=true" "CNI_CONF_TEMPLATE=$template"
	# Pulls of REGISTRY/... go to the same registry on the bridge.
	render "$TEMPLATES/hosts.toml.in" "$dir/containerd/certs.d/$REGISTRY/hosts.toml" \
		"REGISTRY=$KUBEADM_REGISTRY"
	kadm_start_containerd "$name"
	# kubeadm finds the node's kubelet as `kubelet` on its PATH (its preflight runs --version).
	mkdir -p "$KUBEADM_NODES/bin-$kind"
	ln -sfn "$(kadm_agent_bin "$name")" "$KUBEADM_NODES/bin-$kind/kubelet"
}

# kadm_start_containerd NAME: the node's containerd, in the node's namespaces, started unless
# it answers (a changed config restarts it).
kadm_start_containerd() {
	local name=$1 component config
	local -a ENTER
	component=$(kadm_containerd "$name")
	config=$(kadm_dir "$name")/containerd/config.toml
	kadm_enter "$name"
	if component_pid "$component" >/dev/null; then
		if [[ $(cat "$PIDS/$component.args" 2>/dev/null) == "$(sha256sum "$config")" ]] &&
			kadm_crictl "$name" info >/dev/null 2>&1; then
			return 0
		fi
		stop_component "$component" 60
	fi
	start_bg "$component" "${ENTER[@]}" "$(containerd_bin)" --config "$config"
	sha256sum "$config" >"$PIDS/$component.args"
	wait_until "$(startup_timeout containerd)" "containerd of node $name" kadm_crictl "$name" info
}

# The second registry process: the same store as `registry`, on the bridge's host address.
kadm-registry_cmd() { CMD=(docker-registry serve "$KUBEADM_NODES/registry/config.yml"); }
health_kadm-registry() { http_ok "http://$KUBEADM_REGISTRY/v2/"; }

# kadm_node_registration NAME: the nodeRegistration of kubeadm's Init- or JoinConfiguration.
kadm_node_registration() {
	local name=$1 dir
	dir=$(kadm_dir "$name")
	cat <<EOF
nodeRegistration:
  name: $name
  criSocket: unix://$(kadm_socket "$name")
  taints: []
  kubeletExtraArgs:
  - name: node-ip
    value: $(kadm_ip "$name")
$(kadm_kind_args "$name")
  ignorePreflightErrors:
$(printf '  - %s\n' "${KUBEADM_IGNORED_PREFLIGHT[@]}")
EOF
}

# kadm_kind_args NAME: the kubeletExtraArgs of the node's kind: minikubelet's CNI paths of the
# node, or kubelet's volume plugin dir (inside what is the node's); both kinds get the node's own
# cgroup root.
kadm_kind_args() {
	local name=$1 dir
	dir=$(kadm_dir "$name")
	cat <<EOF
  - name: cgroup-root
    value: /$(kadm_cgroup_root "$name")
EOF
	if [[ $(kadm_kind "$name") == kubelet ]]; then
		cat <<EOF
  - name: volume-plugin-dir
    value: /var/lib/kubelet/volumeplugins
EOF
		return 0
	fi
	cat <<EOF
  - name: cni-conf-dir
    value: $dir/cni/agent.d
  - name: cni-routes-dir
    value: $dir/cni/routes
  - name: cni-cache-dir
    value: $dir/cni/cache
EOF
}

write_init_config() {
	local dir signing=''
	dir=$(kadm_dir "$KUBEADM_CP")
	if [[ -n $KUBEADM_SIGNING_DURATION ]]; then
		signing="
  - name: cluster-signing-duration
    value: $KUBEADM_SIGNING_DURATION"
	fi
	(
		umask 077
		cat >"$dir/init.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $KUBEADM_CP_IP
  bindPort: 6443
$(kadm_node_registration "$KUBEADM_CP")
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
clusterName: mkl-kubeadm
kubernetesVersion: $K8S_VERSION
imageRepository: $KUBEADM_IMAGE_REPO
controlPlaneEndpoint: $KUBEADM_CP_IP:6443
networking:
  podSubnet: $KUBEADM_POD_SUBNET
  serviceSubnet: $KUBEADM_SERVICE_SUBNET
etcd:
  local:
    imageTag: $ETCD_VERSION
controllerManager:
  extraArgs:
  # The flexvolume dir kube-controller-manager mounts (DirectoryOrCreate) stays in the node.
  - name: flex-volume-plugin-dir
    value: /var/lib/kubelet/volumeplugins$signing
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
---
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
conntrack:
  # kube-proxy would raise nf_conntrack_max, a setting of the host's, not of the node's.
  maxPerCore: 0
EOF
	)
}

# kadm_run_kubeadm NAME LOG KUBEADM_ARG...: kubeadm on the node, in the background (pid in
# KUBEADM_PID), with the node's kubelet (kadm_prepare_node) as `kubelet` on its PATH.
kadm_run_kubeadm() {
	local name=$1 logf=$2
	local -a ENTER
	shift 2
	kadm_enter "$name"
	printf '==== %s: kubeadm %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logf"
	PATH=$KUBEADM_NODES/bin-$(kadm_kind "$name"):$BIN/current:$PATH setsid "${ENTER[@]}" \
		"$(bin_path kubeadm)" "$@" </dev/null >>"$logf" 2>&1 9>&- &
	KUBEADM_PID=$!
}

# kadm_start_agent NAME LOG FILE...: waits for kubeadm to write FILE... (relative to the
# node's dir, the flags file last), then starts the node's kubelet with the unit's command line.
kadm_start_agent() {
	local name=$1 logf=$2 dir
	local -a CMD ENTER
	shift 2
	dir=$(kadm_dir "$name")
	if ! wait_kubeadm_wrote "$dir" "$KUBEADM_PID" "$@"; then
		terminate_pid "$KUBEADM_PID" kubeadm 10
		show_log_tail "$logf" 30
		die "kubeadm did not write the kubelet's files on $name (log: $logf)"
	fi
	kadm_enter "$name"
	joined_agent_cmd "$dir" "$(kadm_agent_bin "$name")" "${ENTER[@]}"
	log "kubeadm wrote the kubelet's files; starting $(kadm_kind "$name") as $name"
	start_bg "$(kadm_agent "$name")" "${CMD[@]}"
}

# kadm_finish NAME LOG T0 WHAT: waits for kubeadm to exit 0 and for the node to be Ready.
kadm_finish() {
	local name=$1 logf=$2 t0=$3 what=$4 rc=0
	wait "$KUBEADM_PID" || rc=$?
	if ((rc != 0)); then
		stop_component "$(kadm_agent "$name")" 30
		show_log_tail "$logf" 40
		die "$what failed with exit $rc (log: $logf)"
	fi
	[[ -s $KUBEADM_ADMIN ]] || install -m 0600 "$(kadm_dir "$KUBEADM_CP")/etc-kubernetes/admin.conf" "$KUBEADM_ADMIN"
	KUBECTL_KUBECONFIG=$KUBEADM_ADMIN wait_node_ready "$name" "$(kadm_agent "$name")"
	log "$what: node $name is Ready $((SECONDS - t0))s after kubeadm started"
}

cmd_kubeadm_init() {
	local t0 logf=$LOGS/kubeadm-init.log
	health_registry >/dev/null 2>&1 || die "the registry is not up: run 'cluster up' first"
	if component_pid "$(kadm_agent "$KUBEADM_CP")" >/dev/null; then
		die "the kubeadm cluster is up (cluster kubeadm-reset first)"
	fi
	# Built by `cluster agent` (tests run with cargo's lock on the target dir: no build here).
	[[ -x $(minikubelet_bin) ]] || build_agent
	install_cni_delegate
	kubeadm_images
	cmd_kubeadm_reset
	mkdir -p "$KUBEADM_NODES" "$LOGS"
	kadm_bridge
	kadm_prepare_node "$KUBEADM_CP" minikubelet
	write_init_config
	log "kubeadm init: control plane node $KUBEADM_CP at $KUBEADM_CP_IP (log: $logf)"
	t0=$SECONDS
	kadm_run_kubeadm "$KUBEADM_CP" "$logf" init --config "$(kadm_dir "$KUBEADM_CP")/init.yaml" -v1
	kadm_start_agent "$KUBEADM_CP" "$logf" etc-kubernetes/kubelet.conf \
		var-lib-kubelet/config.yaml var-lib-kubelet/kubeadm-flags.env
	kadm_finish "$KUBEADM_CP" "$logf" "$t0" "kubeadm init"
	kadm_routes
	kadm_wait_addons
	log "kubeadm cluster up in $((SECONDS - t0))s: KUBECONFIG=$KUBEADM_ADMIN"
}

# kadm_wait_addons: kube-proxy on every node and CoreDNS available.
kadm_wait_addons() {
	kadm_kubectl -n kube-system rollout status daemonset/kube-proxy --timeout="${KUBEADM_TIMEOUT}s" >/dev/null ||
		die "kube-proxy did not roll out (kubectl --kubeconfig $KUBEADM_ADMIN -n kube-system get pods)"
	kadm_kubectl -n kube-system rollout status deployment/coredns --timeout="${KUBEADM_TIMEOUT}s" >/dev/null ||
		die "CoreDNS did not roll out (kubectl --kubeconfig $KUBEADM_ADMIN -n kube-system get pods)"
}

# cmd_kubeadm_join NAME [KIND]: a worker whose kubelet is KIND (default minikubelet; kubelet
# for `kubeadm-join-kubelet`, the comparison node of the conformance and benchmark lanes).
cmd_kubeadm_join() {
	local name=$1 kind=${2:-minikubelet} dir t0 logf discovery
	valid_kadm_name "$name"
	[[ $name != "$KUBEADM_CP" ]] || die "$KUBEADM_CP is the control plane node"
	component_pid "$(kadm_agent "$KUBEADM_CP")" >/dev/null || die "the kubeadm cluster is not up: run 'cluster kubeadm-init' first"
	component_pid "$(kadm_agent "$name")" >/dev/null && die "node $name is already in the kubeadm cluster"
	dir=$(kadm_dir "$name")
	logf=$LOGS/kubeadm-join-$name.log
	[[ $kind == minikubelet ]] || build_kubelet
	kadm_prepare_node "$name" "$kind"
	discovery=$(join_discovery "$KUBEADM_ADMIN" "$KUBEADM_CP_IP:6443") || exit 1
	(
		umask 077
		cat >"$dir/join.yaml" <<EOF
$discovery
$(kadm_node_registration "$name")
EOF
	)
	log "kubeadm join: node $name ($kind) at $(kadm_ip "$name") (log: $logf)"
	t0=$SECONDS
	kadm_run_kubeadm "$name" "$logf" join --config "$dir/join.yaml" -v1
	kadm_start_agent "$name" "$logf" etc-kubernetes/bootstrap-kubelet.conf \
		var-lib-kubelet/config.yaml var-lib-kubelet/kubeadm-flags.env
	kadm_finish "$name" "$logf" "$t0" "kubeadm join"
	kadm_routes
	kadm_kubectl -n kube-system rollout status daemonset/kube-proxy --timeout="${KUBEADM_TIMEOUT}s" >/dev/null ||
		die "kube-proxy did not start on $name"
}

# cmd_kubeadm_agent NAME: node NAME's agent (re)started with the unit's command line (after a
# crash, or to run a new build), as systemd's Restart= would; waits until the node is Ready.
cmd_kubeadm_agent() {
	local name=$1
	local -a CMD ENTER
	valid_kadm_name "$name"
	[[ -s $(kadm_dir "$name")/var-lib-kubelet/kubeadm-flags.env ]] || die "no kubeadm node $name"
	stop_component "$(kadm_agent "$name")" 30
	kadm_enter "$name"
	joined_agent_cmd "$(kadm_dir "$name")" "$(kadm_agent_bin "$name")" "${ENTER[@]}"
	start_bg "$(kadm_agent "$name")" "${CMD[@]}"
	KUBECTL_KUBECONFIG=$KUBEADM_ADMIN wait_node_ready "$name" "$(kadm_agent "$name")"
	log "node $name's agent restarted; the node is Ready"
}

# --- reset ------------------------------------------------------------------------------------

# cmd_kubeadm_reset: every node of the kubeadm cluster gone, workers first: agent stopped, its
# pods' containers removed through its containerd, containerd stopped, leftover shims ended,
# mounts, namespaces, the veth and the node's files removed; then the bridge and its registry.
cmd_kubeadm_reset() {
	local name
	for name in $(kadm_nodes | grep -vx "$KUBEADM_CP") $(kadm_nodes | grep -x "$KUBEADM_CP"); do
		kadm_forget_node "$name"
	done
	stop_component kadm-registry
	if ip link show "$KUBEADM_BRIDGE" >/dev/null 2>&1; then ip link delete "$KUBEADM_BRIDGE"; fi
	rm -rf --one-file-system "$KUBEADM_NODES" "$KUBEADM_RUN"
	remove_created_mount_points when-no-node-is-left
}

kadm_forget_node() {
	local name=$1 dir run ns id
	dir=$(kadm_dir "$name")
	run=$(kadm_run "$name")
	ns=$(kadm_netns "$name")
	stop_component "$(kadm_agent "$name")" 30
	if component_pid "$(kadm_containerd "$name")" >/dev/null; then
		# The pods' network goes with the namespace; their containers are stopped here.
		for id in $(kadm_crictl "$name" ps -aq 2>/dev/null); do
			kadm_crictl "$name" rm -f "$id" >/dev/null 2>&1 || warn "crictl rm $id failed on $name"
		done
	fi
	stop_component "$(kadm_containerd "$name")" 60
	kill_shims_of "$run/containerd"
	our_mounts | { grep -E "^($run/|$dir/)" || true; } | unmount_listed
	forget_node "$(kadm_mntns "$name")" "$dir"
	if [[ -e /run/netns/$ns ]]; then ip netns delete "$ns" 2>/dev/null || warn "cannot delete netns $ns"; fi
	# The node's cgroup root, innermost first (empty once its pods are gone).
	find /sys/fs/cgroup/*/"$(kadm_cgroup_root "$name")" -depth -type d -exec rmdir {} + 2>/dev/null || true
	ip link delete "kv-$name" 2>/dev/null || true
	rm -rf --one-file-system "$run"
	log "kubeadm node $name removed"
}
