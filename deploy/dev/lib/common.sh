# shellcheck shell=bash
# Common helpers for deploy/dev/cluster: paths, logging, polling, pid files.
# Sourced by the cluster script; every function assumes `set -euo pipefail`.
# The settings below are used by the other lib/*.sh files.
# shellcheck disable=SC2034

STATE=${MKL_STATE_DIR:-/var/lib/minikubelet-dev}
RUN=${MKL_RUN_DIR:-/run/minikubelet-dev}
CACHE=${MKL_CACHE_DIR:-/var/cache/minikubelet}
NODE=${MKL_NODE_NAME:-mkl-node}
CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$CACHE/target}

PKI=$STATE/pki
LOGS=$STATE/logs
PIDS=$STATE/pids
BIN=$CACHE/bin

HOST=127.0.0.1
APISERVER_URL=https://$HOST:6443
REGISTRY=$HOST:5000
PAUSE_IMAGE=$REGISTRY/pause:1.0
BUSYBOX_IMAGE=$REGISTRY/busybox:1.35
# The second registry, with htpasswd (bcrypt) basic auth, for imagePullSecrets tests: user
# mkl, a password generated once into STATE/registry-auth/password (kept across `up`s).
AUTH_REGISTRY=$HOST:5001
AUTH_REGISTRY_DIR=$STATE/registry-auth
AUTH_REGISTRY_USER=mkl
AUTH_REGISTRY_PASSWORD_FILE=$AUTH_REGISTRY_DIR/password
PRIVATE_IMAGE=$AUTH_REGISTRY/private/busybox:1.35
# The dev node's kubeconfig, written by its TLS bootstrap (components.sh: minikubelet_cmd).
NODE_KUBECONFIG=$STATE/agent/kubelet.conf
CLUSTER_CIDR=10.244.0.0/16
NODE_POD_SUBNET=10.244.0.0/24
NODE_CIDR_MASK=24
SERVICE_CIDR=10.96.0.0/16
# The cluster DNS address kubeadm gives the kubelets: the service range's tenth address.
CLUSTER_DNS=10.96.0.10
SERVICE_IP=10.96.0.1
CNI_BIN_DIR=/usr/lib/cni
CNI_CONF_DIR=$STATE/cni/net.d
CNI_BRIDGE=mkl0
CONTAINERD_SOCK=$RUN/containerd/containerd.sock
CRI_ENDPOINT=unix://$CONTAINERD_SOCK
# The 1.6 lane's containerd (`cluster start containerd-1.6`).
CONTAINERD_1_6_DIR=$STATE/containerd-1.6
CONTAINERD_1_6_SOCK=$RUN/containerd-1.6/containerd.sock
CONTAINERD_1_6_ENDPOINT=unix://$CONTAINERD_1_6_SOCK
CRICTL_CONFIG=$STATE/crictl.yaml
SA_ISSUER=https://kubernetes.default.svc.cluster.local

# Poll interval of every wait loop (a poll, not a fixed delay: loops end on a condition).
POLL_INTERVAL=0.2

log() { printf '[cluster] %s\n' "$*"; }
warn() { printf '[cluster] warning: %s\n' "$*" >&2; }
die() {
	printf '[cluster] error: %s\n' "$*" >&2
	exit 1
}

# Prints the last lines of a log file to stderr (used before failing).
show_log_tail() {
	local file=$1 lines=${2:-25}
	[[ -s $file ]] || return 0
	printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
	tail -n "$lines" "$file" >&2 || true
	printf -- '---\n' >&2
}

# pid_alive PID: true when the process exists and is not a zombie.
pid_alive() {
	local pid=$1 stat
	[[ $pid =~ ^[0-9]+$ ]] || return 1
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[[ ${stat:0:1} != Z && ${stat:0:1} != X ]]
}

# cmdline_of PID: the command line with spaces between arguments.
cmdline_of() {
	tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

pid_file() { printf '%s/%s.pid\n' "$PIDS" "$1"; }

# component_pid NAME: prints the pid of a running component we started (pid file, alive,
# and its argv[0] still names the component's binary, so a recycled pid is never trusted).
component_pid() {
	local name=$1 file pid argv0
	file=$(pid_file "$name")
	[[ -r $file ]] || return 1
	pid=$(<"$file")
	pid_alive "$pid" || return 1
	argv0=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n 1) || return 1
	[[ $(basename -- "$argv0") == "$(component_binary "$name")"* ]] || return 1
	printf '%s\n' "$pid"
}

# start_bg NAME CMD...: starts CMD in its own session, logging to LOGS/NAME.log, and
# records its pid and argument list. fd 9 (the cluster lock) is not inherited.
start_bg() {
	local name=$1
	shift
	local logf=$LOGS/$name.log pid
	mkdir -p "$LOGS" "$PIDS"
	printf '==== %s: starting %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logf"
	setsid "$@" </dev/null >>"$logf" 2>&1 9>&- &
	pid=$!
	printf '%s\n' "$pid" >"$(pid_file "$name")"
	printf '%s\n' "$*" >"$PIDS/$name.args"
	# Until the forked shell has exec'd the binary, its cmdline is still ours: wait for the
	# exec so component_pid recognises it (or for the process to die).
	local deadline=$((SECONDS + 10))
	while pid_alive "$pid" && ! component_pid "$name" >/dev/null && ((SECONDS < deadline)); do
		sleep 0.05
	done
}

# wait_gone PID TIMEOUT: polls until PID is gone; false on timeout.
wait_gone() {
	local pid=$1 deadline=$((SECONDS + $2))
	while pid_alive "$pid"; do
		((SECONDS < deadline)) || return 1
		sleep "$POLL_INTERVAL"
	done
}

# Pids this invocation stopped: once dead they linger as zombies until PID 1 reaps them
# (every ~2 s on this VM); wait_reaped waits for that so `ps` is clean when we return.
STOPPED_PIDS=()
wait_reaped() {
	local pid deadline=$((SECONDS + 10))
	for pid in "${STOPPED_PIDS[@]}"; do
		while [[ -e /proc/$pid ]] && ! pid_alive "$pid" && ((SECONDS < deadline)); do
			sleep "$POLL_INTERVAL"
		done
	done
	STOPPED_PIDS=()
}

# terminate_pid PID WHAT [TIMEOUT]: SIGTERM, then SIGKILL after TIMEOUT seconds; waits until gone.
terminate_pid() {
	local pid=$1 what=$2 timeout=${3:-30}
	pid_alive "$pid" || return 0
	STOPPED_PIDS+=("$pid")
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_gone "$pid" "$timeout"; then
		warn "$what (pid $pid) ignored SIGTERM for ${timeout}s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
		wait_gone "$pid" 30 || die "$what (pid $pid) survived SIGKILL"
	fi
}

# stop_component NAME [TIMEOUT]: stops a component by its pid file; no-op when not running.
stop_component() {
	local name=$1 timeout=${2:-30} pid
	if pid=$(component_pid "$name"); then
		log "stopping $name (pid $pid)"
		terminate_pid "$pid" "$name" "$timeout"
	fi
	rm -f "$(pid_file "$name")" "$PIDS/$name.args"
}

# wait_healthy NAME TIMEOUT CHECK...: polls CHECK until it succeeds. Fails early, with the
# tail of the component's log, when its process exits; fails with a clear message on timeout.
wait_healthy() {
	local name=$1 timeout=$2
	shift 2
	local deadline=$((SECONDS + timeout)) logf=$LOGS/$name.log
	until "$@" >/dev/null 2>&1; do
		if ! component_pid "$name" >/dev/null; then
			show_log_tail "$logf"
			die "$name exited during startup (log: $logf)"
		fi
		if ((SECONDS >= deadline)); then
			show_log_tail "$logf"
			die "timed out after ${timeout}s waiting for $name to become healthy (log: $logf)"
		fi
		sleep "$POLL_INTERVAL"
	done
}

# wait_until TIMEOUT WHAT CHECK...: generic poll loop for conditions without a process.
wait_until() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "timed out after ${timeout}s waiting for $what"
		sleep "$POLL_INTERVAL"
	done
}

# render TEMPLATE OUT KEY=VALUE...: replaces @KEY@ placeholders; writes OUT only when changed.
render() {
	local template=$1 out=$2 content kv
	shift 2
	content=$(<"$template")
	for kv in "$@"; do
		content=${content//@${kv%%=*}@/${kv#*=}}
	done
	if grep -q '@[A-Z_][A-Z_]*@' <<<"$content"; then
		die "unrendered placeholder in $template: $(grep -o '@[A-Z_][A-Z_]*@' <<<"$content" | head -n 1)"
	fi
	write_if_changed "$out" "$content"$'\n'
}

# write_if_changed FILE CONTENT: atomic write, skipped when FILE already holds CONTENT.
write_if_changed() {
	local file=$1 content=$2 tmp
	if [[ -f $file ]] && cmp -s "$file" <(printf '%s' "$content"); then
		return 0
	fi
	mkdir -p "$(dirname "$file")"
	tmp=$(mktemp "$file.XXXXXX")
	printf '%s' "$content" >"$tmp"
	mv -f "$tmp" "$file"
}

http_ok() { curl -fsS --max-time 3 -o /dev/null "$@"; }
