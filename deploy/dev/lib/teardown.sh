# shellcheck shell=bash
# `down`: stops everything we started and removes every trace of it from the host, touching
# only what is provably ours (our pid files, our socket/state paths, recorded netns, mkl0).

# Volatile parts of STATE (removed by down). STATE/pki and STATE/logs are kept.
VOLATILE=(etcd containerd containerd-1.6 cni agent registry registry-auth manifests nodes joined pids
	admin.kubeconfig controller-manager.kubeconfig scheduler.kubeconfig node.kubeconfig # (older runs)
	bootstrap.kubeconfig metrics-server.kubeconfig netns.record ip_forward.orig crictl.yaml
	csi-minihostpath kubeadm node-mount-points)

# Pods first, while containerd can still run CNI DEL. A stopped containerd with state left
# behind is started briefly for this.
teardown_pods() {
	[[ -x $(bin_path crictl) ]] || return 0
	if ! component_up containerd; then
		[[ -d $STATE/containerd/root && -f $STATE/containerd/config.toml ]] || return 0
		[[ -n $(ls -A "$STATE/containerd/root/io.containerd.grpc.v1.cri/sandboxes" 2>/dev/null) ]] || return 0
		log "starting containerd briefly to remove its pods"
		(ensure_component containerd) || {
			warn "containerd did not start; falling back to manual cleanup"
			return 0
		}
	fi
	remove_all_pods
}

# stop_containerd_1_6: the 1.6 lane's sandboxes removed through it (CNI DEL runs), then it is
# stopped and whatever it left (shims, containers) is ended.
stop_containerd_1_6() {
	if component_up containerd-1.6; then
		CRI_ENDPOINT=$CONTAINERD_1_6_ENDPOINT remove_all_pods
	fi
	stop_component containerd-1.6 60
	kill_shims_of "$RUN/containerd-1.6"
}

# Shims and containers that survived containerd (they belong to our socket/state only).
kill_leftover_shims() {
	kill_shims_of "$RUN/containerd"
	kill_shims_of "$RUN/containerd-1.6"
}

# kill_shims_of DIR: the containers of the runc roots below DIR/runc deleted, and the shims
# of the containerd whose socket and state are in DIR ended, each checked by its command line
# and signalled by pid.
kill_shims_of() {
	local dir=$1 root pid cmd id runc=runc
	# The runc that made them: the built one under containerd 2, Debian's under the 1.6 lane.
	[[ $dir == */containerd-1.6 || ! -x $(bin_path runc) ]] || runc=$(bin_path runc)
	for root in "$dir"/runc/*; do
		[[ -d $root ]] || continue
		while read -r id; do
			[[ -n $id ]] || continue
			warn "deleting leftover container $id"
			"$runc" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
		done < <("$runc" --root "$root" list -q 2>/dev/null)
	done
	# Candidates by name (comm is truncated to "containerd-shim"; the built shim runs from
	# CACHE/bin), then each one checked against the socket/state paths before it is signalled
	# by pid.
	for pid in $(pgrep -f '^([^ ]*/)?containerd-shim' 2>/dev/null); do
		cmd=$(cmdline_of "$pid")
		[[ $cmd == *" -address $dir/containerd.sock"* || $cmd == *"$dir/"* ]] || continue
		warn "killing leftover shim pid $pid"
		terminate_pid "$pid" containerd-shim 10
	done
}

# our_mounts: mount points under STATE or RUN, and our recorded netns, innermost first.
our_mounts() {
	local -a exact=("$RUN")
	local r mnt
	if [[ -f $NETNS_RECORD ]]; then
		while read -r r; do
			if [[ -n $r ]]; then exact+=("$r" "$(readlink -m "$r")"); fi
		done <"$NETNS_RECORD"
	fi
	while read -r mnt; do
		printf -v mnt '%b' "${mnt//\\/\\0}" # mountinfo escapes blanks as \040
		case $mnt in
		"$STATE"/* | "$RUN"/*) printf '%s\n' "$mnt" ;;
		*)
			for r in "${exact[@]}"; do
				if [[ $mnt == "$r" ]]; then
					printf '%s\n' "$mnt"
					break
				fi
			done
			;;
		esac
	done < <(awk '{ print $5 }' /proc/self/mountinfo) | tac
}

# unmount_listed: unmounts each mount point read from stdin (lazily if it is busy).
unmount_listed() {
	local mnt
	while read -r mnt; do
		[[ -n $mnt ]] || continue
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || warn "cannot unmount $mnt"
	done
}

unmount_ours() { our_mounts | unmount_listed; }

delete_recorded_netns() {
	[[ -f $NETNS_RECORD ]] || return 0
	local path name
	while read -r path; do
		name=$(basename "$path")
		[[ $name == cni-* ]] || continue
		if [[ -e /run/netns/$name ]]; then
			ip netns delete "$name" 2>/dev/null || rm -f "/run/netns/$name"
		fi
	done < <(sort -u "$NETNS_RECORD")
}

# delete_bridge: mkl0 and its veths, when this STATE configured the bridge network.
delete_bridge() {
	local veth
	[[ -d $CNI_CONF_DIR ]] || return 0
	ip link show "$CNI_BRIDGE" >/dev/null 2>&1 || return 0
	while read -r veth; do
		if [[ -n $veth ]]; then ip link delete "$veth" 2>/dev/null || true; fi
	done < <(ip -o link show master "$CNI_BRIDGE" 2>/dev/null | awk -F': ' '{ print $2 }' | cut -d@ -f1)
	ip link delete "$CNI_BRIDGE"
}

restore_ip_forward() {
	[[ -f $STATE/ip_forward.orig ]] || return 0
	cat "$STATE/ip_forward.orig" >/proc/sys/net/ipv4/ip_forward 2>/dev/null || true
}

# The shim sockets of containerd 1.6 (the 1.6 lane, kind's node image build) always live in
# /run/containerd/s; drop that directory only when it is empty and no system containerd is
# using /run/containerd.
tidy_system_run_dir() {
	[[ -e /run/containerd/containerd.sock ]] && return 0
	rmdir /run/containerd/s 2>/dev/null || true
	rmdir /run/containerd 2>/dev/null || true
}

remove_volatile_state() {
	local left item
	left=$(our_mounts)
	[[ -z $left ]] || die "refusing to delete state: still mounted: $(tr '\n' ' ' <<<"$left")"
	rm -rf --one-file-system "$RUN"
	for item in "${VOLATILE[@]}"; do
		rm -rf --one-file-system "${STATE:?}/$item"
	done
}

cmd_down() {
	local name
	cmd_agent_stop
	cmd_kubeadm_reset
	stop_joined_nodes
	teardown_pods
	stop_containerd_1_6
	stop_component containerd 60
	kill_leftover_shims
	stop_metrics_server
	for name in csi-provisioner csi-controller kube-scheduler kube-controller-manager kube-apiserver etcd registry registry-auth; do
		stop_component "$name"
	done
	unmount_ours
	delete_recorded_netns
	delete_bridge
	teardown_pod_network
	restore_ip_forward
	rmdir_cgroups minikubelet-dev-smoke
	# The agents' pod cgroups: the dev node's, the joined nodes' and the test agents' roots.
	rmdir_cgroups kubepods
	for name in "$JOINED"/*/; do
		if [[ -d $name ]]; then rmdir_cgroups "$(joined_cgroup_root "$(basename "$name")")"; fi
	done
	rmdir_cgroups minikubelet-tests
	rmdir_cgroups minikubelet-scenarios
	rmdir_cgroups k8s.io # containerd's default parent; only removed when empty
	tidy_system_run_dir
	remove_created_mount_points all # before remove_volatile_state, which deletes their record
	remove_volatile_state
	log "down: everything stopped and removed (kept $PKI, $LOGS and $CACHE)"
}
