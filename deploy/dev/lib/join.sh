# shellcheck shell=bash
# `cluster join NAME` / `cluster leave NAME`: one more node, joined the way kubeadm joins a
# node: `kubeadm token create --print-join-command` on the control plane's side, then a real
# `kubeadm join` with that token and CA hash, which writes
# /etc/kubernetes/bootstrap-kubelet.conf, /var/lib/kubelet/config.yaml and kubeadm-flags.env,
# then waits for the kubelet's TLS bootstrap; minikubelet is started with the command line of
# deploy/systemd/kubelet.service (kubeadm's contract with kubelet.service) from those files.
#
# A node here is a mount namespace (RUN/mntns/NAME, kept by a bind mount like `ip netns`)
# in which /etc/kubernetes and /var/lib/kubelet are the node's own directories under
# STATE/joined/NAME, so kubeadm's fixed paths are private to the node and nothing is
# written to the host's. Its root dir (--root-dir, via kubeletExtraArgs) has the same path
# in both namespaces and is a shared mount, so the tmpfs and bind mounts the agent makes for
# volumes reach containerd, which runs in the host's namespace. Ports are the node's own
# (kubeadm's per-node patches set port and healthzPort); the network is the host's.

JOINED=$STATE/joined
MNTNS_DIR=$RUN/mntns
# The host directories created as mount points of nodes (removed when no node is left).
CREATED_MOUNT_POINTS=$STATE/node-mount-points
# ensure_node_namespace's directories shared with the host (callers set their own, local).
NODE_SHARED_SUBDIRS=()
JOIN_TIMEOUT=${MKL_JOIN_TIMEOUT:-300}
# Host directories kubeadm's paths need as mount points (created empty when missing,
# recorded, and removed by `down` when still empty).
NODE_MOUNT_POINTS=(/etc/kubernetes /var/lib/kubelet)
# Preflight errors of this machine, not of the joining node (kubeadm 1.35.4; the others it
# reports here are warnings: Hostname, Service-kubelet, ContainerRuntimeVersion):
#   Port-10250          the dev node mkl-node listens there; a joined node uses its own port
#   SystemVerification  cgroup v1 ("cgroups v1 support is deprecated ..."; the kubelet-config
#                       ConfigMap sets failCgroupV1: false, which kubelet needs to run here)
#   FileContent--proc-sys-net-ipv4-ip_forward  0 until the dev cluster's bridge turns it on
JOIN_IGNORED_PREFLIGHT=(Port-10250 SystemVerification FileContent--proc-sys-net-ipv4-ip_forward)

# The label the agent puts on its sandboxes (agent/src/runtime: NODE_LABEL).
NODE_SANDBOX_LABEL=minikubelet.io/node

node_has_no_sandboxes() { [[ -z $(crictl_ pods -q --label "$NODE_SANDBOX_LABEL=$1" 2>/dev/null) ]]; }

joined_dir() { printf '%s/%s\n' "$JOINED" "$1"; }
joined_component() { printf 'minikubelet-%s\n' "$1"; }

# join_discovery KUBECONFIG ENDPOINT: what a user runs on the control plane to join a node,
# `kubeadm token create --print-join-command` (a new bootstrap token, 1 h, in kubeadm's
# default-node-token group; kube-controller-manager's tokencleaner deletes it when it
# expires), turned into the head of a JoinConfiguration: discovery through ENDPOINT with the
# printed token and CA hash. (The file, not the command's flags: kubeadm takes the patches and
# kubeletExtraArgs only from a JoinConfiguration.) Run it in $(...) and check its status.
join_discovery() {
	local kubeconfig=$1 endpoint=$2 line token hash
	line=$("$(bin_path kubeadm)" token create --print-join-command --ttl 1h \
		--description "minikubelet dev cluster: a joining node" \
		--kubeconfig "$kubeconfig" 2>>"$LOGS/kubeadm-token.log") ||
		die "kubeadm token create failed (log: $LOGS/kubeadm-token.log)"
	token=$(sed -n 's/.* --token \([^ ]*\).*/\1/p' <<<"$line")
	hash=$(sed -n 's/.* --discovery-token-ca-cert-hash \([^ ]*\).*/\1/p' <<<"$line")
	[[ -n $token && $hash == sha256:* ]] || die "cannot read the token and CA hash of: kubeadm join ..."
	cat <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: $endpoint
    token: $token
    caCertHashes:
    - $hash
EOF
}

# free_port_from N: the first port >= N that nothing listens on and no joined node claims.
free_port_from() {
	local p=$1
	while ss -Hltn "sport = :$p" | grep -q . || grep -qsx "$p" "$JOINED"/*/ports; do
		p=$((p + 1))
	done
	printf '%s\n' "$p"
}

# joined_cgroup_root NAME: the node's own cgroup root (its kubepods is never the dev node's).
joined_cgroup_root() { printf 'joined-%s\n' "$1"; }

valid_node_name() {
	[[ $1 =~ ^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$ ]] || die "node name '$1' is not a DNS label"
	[[ $1 != "$NODE" ]] || die "$NODE is the dev node (cluster agent); pick another name"
}

# ensure_mount_point DIR: DIR exists on the host (created empty and recorded if it did not).
ensure_mount_point() {
	[[ -d $1 ]] && return 0
	mkdir -p "$1" "$(dirname "$CREATED_MOUNT_POINTS")"
	printf '%s\n' "$1" >>"$CREATED_MOUNT_POINTS"
}

# node_subdir PATH: the directory of a node that stands for PATH (/var/lib/kubelet ->
# var-lib-kubelet).
node_subdir() {
	local s=${1#/}
	printf '%s\n' "${s//\//-}"
}

# ensure_node_namespace NAME DIR PATH...: the mount namespace MNTNS_DIR/NAME of a node, made
# once, in which every PATH is a bind mount of the node's own DIR/$(node_subdir PATH). The
# caller's NODE_SHARED_SUBDIRS (optional) names directories of DIR bound onto themselves and
# made shared first, so mounts below them are seen in both namespaces.
ensure_node_namespace() {
	local name=$1 dir=$2 ns=$MNTNS_DIR/$1 mnt sub
	shift 2
	local -a subdirs=()
	for mnt in "$@"; do subdirs+=("$dir/$(node_subdir "$mnt")"); done
	for sub in "${NODE_SHARED_SUBDIRS[@]}"; do subdirs+=("$dir/$sub"); done
	if [[ -e $ns ]] && nsenter --mount="$ns" true 2>/dev/null && dirs_exist "${subdirs[@]}"; then
		return 0
	fi
	forget_node "$name" "$dir" # a half-made node from an earlier attempt
	mkdir -p "$MNTNS_DIR" "${subdirs[@]}"
	if ! mountpoint -q "$MNTNS_DIR"; then
		mount --bind "$MNTNS_DIR" "$MNTNS_DIR"
		mount --make-private "$MNTNS_DIR"
	fi
	for sub in "${NODE_SHARED_SUBDIRS[@]}"; do
		if ! mountpoint -q "$dir/$sub"; then
			mount --bind "$dir/$sub" "$dir/$sub"
			mount --make-shared "$dir/$sub"
		fi
	done
	for mnt in "$@"; do ensure_mount_point "$mnt"; done
	touch "$ns"
	# --propagation unchanged keeps the shared directories in the host's peer group; the
	# mounts that hold the bind targets are made slaves first, so the binds stay in the node.
	# shellcheck disable=SC2016 # the script expands its own "$1" and "$target"
	unshare --mount="$ns" --propagation unchanged sh -euc '
		dir=$1
		shift
		for target in "$@"; do
			mount --make-slave "$(findmnt -n -o TARGET -T "$target")"
		done
		for target in "$@"; do
			sub=$(printf "%s" "${target#/}" | tr / -)
			mount --bind "$dir/$sub" "$target"
		done' sh "$dir" "$@" ||
		die "cannot create the mount namespace of node $name"
}

dirs_exist() {
	local d
	for d in "$@"; do [[ -d $d ]] || return 1; done
}

# write_join_config NAME: kubeadm's JoinConfiguration (join_discovery's head) and the node's
# kubelet patch.
write_join_config() {
	local name=$1 dir port healthz discovery
	dir=$(joined_dir "$name")
	discovery=$(join_discovery "$STATE/admin.kubeconfig" "${APISERVER_URL#https://}") || exit 1
	port=$(free_port_from 10350)
	healthz=$(free_port_from $((port + 1)))
	printf '%s\n%s\n' "$port" "$healthz" >"$dir/ports"
	mkdir -p "$dir/patches"
	printf 'port: %s\nhealthzPort: %s\n' "$port" "$healthz" >"$dir/patches/kubeletconfiguration.yaml"
	(
		umask 077
		cat >"$dir/join.yaml" <<EOF
$discovery
nodeRegistration:
  name: $name
  criSocket: $CRI_ENDPOINT
  taints: []
  kubeletExtraArgs:
  - name: node-ip
    value: $HOST
  - name: root-dir
    value: $dir/root
  - name: cgroup-root
    value: /$(joined_cgroup_root "$name")
  ignorePreflightErrors:
$(printf '  - %s\n' "${JOIN_IGNORED_PREFLIGHT[@]}")
patches:
  directory: $dir/patches
EOF
	)
}

# joined_agent_cmd DIR BINARY PREFIX...: CMD becomes the ExecStart of
# deploy/systemd/kubelet.service (kubeadm's contract with kubelet.service) with BINARY as the
# kubelet, after PREFIX (the nsenter into the node): the kubeconfig and config flags, then
# KUBELET_KUBEADM_ARGS from the kubeadm-flags.env kubeadm wrote into the node's DIR.
joined_agent_cmd() {
	local dir=$1 binary=$2 env_file line
	local -a kubeadm_args=()
	shift 2
	env_file=$dir/var-lib-kubelet/kubeadm-flags.env
	line=$(sed -n 's/^KUBELET_KUBEADM_ARGS="\(.*\)"$/\1/p' "$env_file")
	[[ -n $line ]] || die "no KUBELET_KUBEADM_ARGS in $env_file"
	read -ra kubeadm_args <<<"$line"
	CMD=("$@" "$binary"
		--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf
		--kubeconfig=/etc/kubernetes/kubelet.conf
		--config=/var/lib/kubelet/config.yaml
		"${kubeadm_args[@]}")
}

# wait_kubeadm_wrote DIR PID FILE...: polls until kubeadm (PID) has written FILE... (relative
# to the node's DIR) that the kubelet starts from; kubeadm-flags.env is written last, and is
# whole once its line closes.
wait_kubeadm_wrote() {
	local dir=$1 pid=$2 deadline=$((SECONDS + JOIN_TIMEOUT)) f
	shift 2
	for f in "$@"; do
		until [[ -s $dir/$f ]] && { [[ $f != *.env ]] || grep -q '^KUBELET_KUBEADM_ARGS=".*"$' "$dir/$f"; }; do
			pid_alive "$pid" || return 1
			((SECONDS < deadline)) || return 1
			sleep "$POLL_INTERVAL"
		done
	done
}

cmd_join() {
	local name=$1 dir t0=$SECONDS kubeadm_pid rc=0 logf
	local -a CMD
	valid_node_name "$name"
	health_kube-apiserver >/dev/null 2>&1 || die "kube-apiserver is not up: run 'cluster up' first"
	dir=$(joined_dir "$name")
	if component_pid "$(joined_component "$name")" >/dev/null; then
		die "node $name is already joined (cluster leave $name first)"
	fi
	[[ -x $(minikubelet_bin) ]] || build_agent
	apply_manifests
	mkdir -p "$JOINED" "$LOGS"
	local -a NODE_SHARED_SUBDIRS=(root) # the root dir, where the agent mounts volumes
	ensure_node_namespace "$name" "$dir" "${NODE_MOUNT_POINTS[@]}"
	# A node joins from empty directories (kubeadm's preflight refuses existing files); they
	# are emptied, not replaced, as the namespace's binds hold them.
	find "${dir:?}/etc-kubernetes" "$dir/var-lib-kubelet" -mindepth 1 -delete
	write_join_config "$name"
	logf=$LOGS/kubeadm-join-$name.log
	log "kubeadm join: node $name (log: $logf)"
	printf '==== %s: kubeadm join\n' "$(date -u +%FT%TZ)" >>"$logf"
	# kubeadm runs in the node's namespace with minikubelet installed as `kubelet` on its PATH
	# (its preflight runs `kubelet --version`); its kubelet-start phase finds no running
	# systemd here, warns, and waits for the kubelet, which this function starts instead.
	mkdir -p "$JOINED/bin"
	ln -sfn "$(minikubelet_bin)" "$JOINED/bin/kubelet"
	PATH=$JOINED/bin:$BIN/current:$PATH setsid nsenter --mount="$MNTNS_DIR/$name" -- \
		"$(bin_path kubeadm)" join --config "$dir/join.yaml" -v1 </dev/null >>"$logf" 2>&1 9>&- &
	kubeadm_pid=$!
	if ! wait_kubeadm_wrote "$dir" "$kubeadm_pid" etc-kubernetes/bootstrap-kubelet.conf \
		var-lib-kubelet/config.yaml var-lib-kubelet/kubeadm-flags.env; then
		terminate_pid "$kubeadm_pid" "kubeadm join" 10
		show_log_tail "$logf" 30
		die "kubeadm join did not write the kubelet's files (log: $logf)"
	fi
	joined_agent_cmd "$dir" "$(minikubelet_bin)" nsenter --mount="$MNTNS_DIR/$name" --
	log "kubeadm wrote the kubelet's files in $((SECONDS - t0))s; starting minikubelet as $name"
	start_bg "$(joined_component "$name")" "${CMD[@]}"
	wait "$kubeadm_pid" || rc=$?
	if ((rc != 0)); then
		stop_component "$(joined_component "$name")" 30
		show_log_tail "$logf" 30
		die "kubeadm join failed with exit $rc (log: $logf)"
	fi
	wait_node_ready "$name" "$(joined_component "$name")"
	log "node $name joined through kubeadm and is Ready in $((SECONDS - t0))s"
}

# cmd_leave NAME: the node's static pod manifests removed and its pods deleted through the
# API while its agent runs (so it tears them down, CNI DEL included), the agent stopped, any
# sandbox left of the node removed through CRI, the Node deleted, its mounts and files gone.
cmd_leave() {
	local name=$1 dir component
	valid_node_name "$name"
	dir=$(joined_dir "$name")
	component=$(joined_component "$name")
	if component_pid "$component" >/dev/null; then
		if [[ -d $dir/etc-kubernetes/manifests ]]; then
			find "$dir/etc-kubernetes/manifests" -mindepth 1 -delete
		fi
		kubectl_ delete pods -A --field-selector "spec.nodeName=$name" --wait=true \
			--timeout=120s >/dev/null 2>&1 || warn "pods of $name were not all deleted in 120s"
		(wait_until 60 "the sandboxes of node $name to go" node_has_no_sandboxes "$name") ||
			warn "node $name still has sandboxes after 60s; removing them through CRI"
	fi
	stop_component "$component" 30
	remove_all_pods "$NODE_SANDBOX_LABEL=$name"
	rmdir_cgroups "$(joined_cgroup_root "$name")"
	kubectl_ delete node "$name" --ignore-not-found >/dev/null
	delete_join_token "$dir/join.yaml"
	forget_node "$name" "$dir"
	remove_created_mount_points when-no-node-is-left
	log "node $name left: agent stopped, Node deleted, $dir removed"
}

# delete_join_token JOIN_YAML: the bootstrap token the node joined with is deleted (it would
# expire within the hour anyway).
delete_join_token() {
	local token
	[[ -r $1 ]] || return 0
	token=$(sed -n 's/^ *token: \([a-z0-9]\{6\}\)\.[a-z0-9]\{16\}$/\1/p' "$1")
	[[ -n $token ]] || return 0
	"$(bin_path kubeadm)" token delete "$token" --kubeconfig "$STATE/admin.kubeconfig" \
		>/dev/null 2>&1 || warn "could not delete bootstrap token $token"
}

# forget_node NAME DIR: unmount the node's mounts and namespace and delete its directory.
forget_node() {
	local name=$1 dir=$2
	our_mounts | { grep -E "^($dir/|$MNTNS_DIR/$name\$)" || true; } | unmount_listed
	rm -f "$MNTNS_DIR/$name"
	if ! our_mounts | grep -q "^$dir/"; then rm -rf --one-file-system "$dir"; fi
}

# stop_joined_nodes: `down`'s first part: every joined node's agent stopped (their pods go
# with the others, through CRI; their mounts with the others under STATE and RUN).
stop_joined_nodes() {
	local dir
	for dir in "$JOINED"/*/; do
		[[ -d $dir ]] || continue
		stop_component "$(joined_component "$(basename "$dir")")" 30
	done
}

# any_node_left: a node of `join` or of the kubeadm cluster still has its directory.
any_node_left() {
	[[ -n $(find "$JOINED" "$KUBEADM_NODES/nodes" -mindepth 1 -maxdepth 1 -type d ! -name bin 2>/dev/null) ]]
}

# remove_created_mount_points when-no-node-is-left|all: the host directories
# ensure_mount_point created, when still empty: once no node is left (`leave` of the last one,
# `kubeadm-reset`), or all of them at `down` (its nodes are stopped and unmounted by then).
remove_created_mount_points() {
	local mnt
	[[ $1 == all ]] || ! any_node_left || return 0
	if [[ -f $CREATED_MOUNT_POINTS ]]; then
		while read -r mnt; do
			if [[ -n $mnt ]]; then rmdir "$mnt" 2>/dev/null || true; fi
		done <"$CREATED_MOUNT_POINTS"
		rm -f "$CREATED_MOUNT_POINTS"
	fi
}
