# shellcheck shell=bash
# containerd/CRI helpers: crictl wrapper, image verification, pod cleanup, smoke test.

NETNS_RECORD=$STATE/netns.record

# containerd_bin: the dev cluster's containerd (2.x, built by ensure_binaries; its runc v2 shim
# is beside it). Every node of the dev cluster, the kubeadm cluster and the benchmark runs it.
containerd_bin() { printf '%s/containerd\n' "$(bin_path containerd)"; }

# render_containerd_config OUT KEY=VALUE...: a containerd 2 config (templates/
# containerd-config.toml.in) with the built shim and runc; the caller gives DIR (root, opt,
# certs.d), RUNDIR (socket, state, shim sockets, runc root), PAUSE_IMAGE, CNI_CONF_DIR,
# NETNS_UNDER_STATE and CNI_CONF_TEMPLATE.
render_containerd_config() {
	local out=$1
	shift
	render "$TEMPLATES/containerd-config.toml.in" "$out" "CNI_BIN_DIR=$CNI_BIN_DIR" \
		"SHIM=$(bin_path containerd)/containerd-shim-runc-v2" "RUNC=$(bin_path runc)" "$@"
}

# crictl with our endpoints (STATE/crictl.yaml is also exported as CRI_CONFIG_FILE by `env`).
crictl_() {
	"$(bin_path crictl)" --config "$CRICTL_CONFIG" --runtime-endpoint "$CRI_ENDPOINT" \
		--image-endpoint "$CRI_ENDPOINT" --timeout 30s "$@"
}

# verify_runtime_images: containerd pulls both images from the local registry (a pull of an
# unchanged image is a cheap no-op).
verify_runtime_images() {
	local image
	for image in "$PAUSE_IMAGE" "$BUSYBOX_IMAGE"; do
		crictl_ pull "$image" >>"$LOGS/containerd.log" 2>&1 ||
			die "containerd could not pull $image (log: $LOGS/containerd.log, $LOGS/registry.log)"
	done
	log "containerd pulls $BUSYBOX_IMAGE from the local registry"
}

# record_netns ID...: remembers the network namespaces of our sandboxes, so `down` deletes
# exactly those (and never anyone else's).
record_netns() {
	local id path
	mkdir -p "$STATE"
	for id in "$@"; do
		path=$(crictl_ inspectp -o json "$id" 2>/dev/null |
			jq -r '.info.runtimeSpec.linux.namespaces[]? | select(.type == "network") | .path // empty' 2>/dev/null) || true
		[[ -n $path ]] && printf '%s\n' "$path" >>"$NETNS_RECORD"
	done
	return 0
}

# remove_all_pods: stops and removes every pod sandbox (so CNI DEL runs and frees its IP).
# remove_all_pods [LABEL=VALUE]: every sandbox (or those with the label) stopped and removed.
remove_all_pods() {
	local ids id
	mapfile -t ids < <(crictl_ pods -q ${1:+--label "$1"} 2>/dev/null)
	((${#ids[@]} > 0)) || return 0
	log "removing ${#ids[@]} pod sandbox(es)"
	record_netns "${ids[@]}"
	for id in "${ids[@]}"; do
		crictl_ stopp "$id" >/dev/null 2>&1 || warn "crictl stopp $id failed"
		crictl_ rmp -f "$id" >/dev/null 2>&1 || warn "crictl rmp $id failed"
	done
}

# Verb: smoke — one real pod through CRI (sandbox + busybox container), then removed.
SMOKE_POD='' SMOKE_DIR=''
smoke_cleanup() {
	if [[ -n $SMOKE_POD ]]; then
		crictl_ stopp "$SMOKE_POD" >/dev/null 2>&1 || true
		crictl_ rmp -f "$SMOKE_POD" >/dev/null 2>&1 || true
	fi
	[[ -z $SMOKE_DIR ]] || rm -rf "$SMOKE_DIR"
	rmdir_cgroups minikubelet-dev-smoke
	SMOKE_POD='' SMOKE_DIR=''
}

smoke_output_has() { crictl_ logs "$1" 2>/dev/null | grep -q "$2"; }

cmd_smoke() {
	component_up containerd || die "containerd is not up: run 'cluster up' first"
	local ctr
	SMOKE_DIR=$(mktemp -d)
	trap smoke_cleanup EXIT
	cat >"$SMOKE_DIR/pod.json" <<EOF
{"metadata": {"name": "mkl-smoke", "namespace": "default", "uid": "mkl-smoke-$$", "attempt": 0},
 "log_directory": "$SMOKE_DIR/logs",
 "linux": {"cgroup_parent": "/minikubelet-dev-smoke"}}
EOF
	cat >"$SMOKE_DIR/ctr.json" <<EOF
{"metadata": {"name": "busybox"}, "image": {"image": "$BUSYBOX_IMAGE"},
 "command": ["sh", "-c", "ip -4 -o addr show eth0; ip route; id; echo smoke-ok; exec sleep 3600"],
 "log_path": "busybox.log", "linux": {}}
EOF
	log "smoke: RunPodSandbox + CreateContainer + StartContainer ($BUSYBOX_IMAGE)"
	SMOKE_POD=$(crictl_ runp "$SMOKE_DIR/pod.json") || die "smoke: RunPodSandbox failed (log: $LOGS/containerd.log)"
	record_netns "$SMOKE_POD"
	ctr=$(crictl_ create "$SMOKE_POD" "$SMOKE_DIR/ctr.json" "$SMOKE_DIR/pod.json") ||
		die "smoke: CreateContainer failed (log: $LOGS/containerd.log)"
	crictl_ start "$ctr" >/dev/null || die "smoke: StartContainer failed (log: $LOGS/containerd.log)"
	wait_until 30 "the smoke container's output" smoke_output_has "$ctr" '^smoke-ok'
	crictl_ logs "$ctr" 2>&1 | sed 's/^/[smoke] /'
	crictl_ inspectp -o json "$SMOKE_POD" | jq -r '"[smoke] pod IP " + .status.network.ip'
	crictl_ stop -t 2 "$ctr" >/dev/null
	crictl_ rm "$ctr" >/dev/null
	smoke_cleanup
	trap - EXIT
	log "smoke: pod ran and was removed"
}

# rmdir_cgroups NAME: removes the cgroup NAME and what is below it in every hierarchy, innermost
# first; a cgroup with processes (or with a child that has) stays.
rmdir_cgroups() {
	local d
	for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
		if [[ -d $d && ! -L $d ]]; then find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; fi
	done
}
