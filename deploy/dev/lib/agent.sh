# shellcheck shell=bash
# The minikubelet agent: build, (re)start in the background, wait for node Ready.

AGENT_READY_TIMEOUT=${MKL_AGENT_READY_TIMEOUT:-120}

build_agent() {
	command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH (needed to build minikubelet)"
	log "building minikubelet (cargo build --release -p minikubelet, CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
	mkdir -p "$LOGS"
	printf '==== %s: cargo build\n' "$(date -u +%FT%TZ)" >>"$LOGS/agent-build.log"
	if ! (cd "$REPO_ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p minikubelet) \
		>>"$LOGS/agent-build.log" 2>&1; then
		show_log_tail "$LOGS/agent-build.log" 40
		die "building minikubelet failed (log: $LOGS/agent-build.log)"
	fi
	[[ -x $(minikubelet_bin) ]] || die "cargo build succeeded but $(minikubelet_bin) is missing"
	install_cni_delegate
}

node_ready() {
	[[ $(kubectl_ get node "${1:-$NODE}" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

# wait_node_ready [NODE COMPONENT]: polls until the node (default: the dev node) is Ready;
# fails early if its agent (default: the minikubelet component) exits.
wait_node_ready() {
	local node=${1:-$NODE} component=${2:-minikubelet}
	local deadline=$((SECONDS + AGENT_READY_TIMEOUT)) logf=$LOGS/$component.log
	until node_ready "$node"; do
		if ! component_pid "$component" >/dev/null; then
			show_log_tail "$logf" 30
			die "minikubelet exited before node $node became Ready (log: $logf)"
		fi
		if ((SECONDS >= deadline)); then
			show_log_tail "$logf" 30
			die "timed out after ${AGENT_READY_TIMEOUT}s waiting for node $node to be Ready (log: $logf)"
		fi
		sleep "$POLL_INTERVAL"
	done
}

cmd_agent() {
	local -a CMD
	health_kube-apiserver >/dev/null 2>&1 || die "kube-apiserver is not up: run 'cluster up' first"
	health_containerd >/dev/null 2>&1 || die "containerd is not up: run 'cluster up' first"
	build_agent
	cmd_agent_stop
	prepare_minikubelet
	minikubelet_cmd
	check_port_free minikubelet
	log "starting minikubelet as node $NODE"
	start_bg minikubelet "${CMD[@]}"
	wait_node_ready "$NODE" minikubelet
	log "node $NODE is Ready (minikubelet pid $(<"$(pid_file minikubelet)"))"
	kubectl_ get nodes -o wide
}

cmd_agent_stop() {
	stop_component minikubelet 30
}
