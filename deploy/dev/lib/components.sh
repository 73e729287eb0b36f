# shellcheck shell=bash
# The cluster's processes: command lines, health checks, start/stop.
# Each component NAME has:  NAME_cmd (fills the array CMD), health_NAME, prepare_NAME
# (optional; config files), and a startup timeout in seconds.

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler registry registry-auth containerd metrics-server csi-controller csi-provisioner minikubelet containerd-1.6)

# component_binary NAME: the basename prefix of the component's argv[0].
component_binary() {
	case $1 in
	registry | registry-auth | kadm-registry) echo docker-registry ;;
	containerd-1.6) echo containerd ;;      # the 1.6 lane (Debian's /usr/bin/containerd)
	kadm-*-containerd) echo containerd ;;   # a node of the kubeadm cluster (lib/kubeadm.sh)
	bench-kubelet-containerd) echo containerd ;; # kubelet's runtime in deploy/dev/bench-kubelet
	kadm-*-minikubelet) echo minikubelet ;;
	kadm-*-kubelet) echo kubelet ;;
	csi-controller) echo csi-minihostpath ;;
	minikubelet-*) echo minikubelet ;; # a node of `cluster join`
	*) echo "$1" ;;
	esac
}

startup_timeout() {
	case $1 in
	kube-apiserver) echo 180 ;;
	kube-controller-manager | kube-scheduler | containerd | containerd-1.6) echo 120 ;;
	*) echo 60 ;;
	esac
}

is_component() {
	local c
	for c in "${COMPONENTS[@]}"; do [[ $c == "$1" ]] && return 0; done
	return 1
}

# --- command lines --------------------------------------------------------------------------

etcd_cmd() {
	CMD=("$(bin_path etcd)"
		--name=mkl
		--data-dir="$STATE/etcd"
		--listen-client-urls="http://$HOST:2379"
		--advertise-client-urls="http://$HOST:2379"
		--listen-peer-urls="http://$HOST:2380"
		--initial-advertise-peer-urls="http://$HOST:2380"
		--initial-cluster="mkl=http://$HOST:2380"
		--initial-cluster-state=new
		--initial-cluster-token=minikubelet-dev
		--snapshot-count=10000
		--log-level=warn)
}

# --shutdown-send-retry-after: on SIGTERM, drain in-flight requests and then give open
# connections (watches) 2s instead of the default 60s, so stop/restart is quick.
kube-apiserver_cmd() {
	CMD=("$(bin_path kube-apiserver)"
		--advertise-address="$HOST"
		--bind-address="$HOST"
		--secure-port=6443
		--etcd-servers="http://$HOST:2379"
		"--authorization-mode=Node,RBAC"
		--enable-admission-plugins=NodeRestriction
		--enable-bootstrap-token-auth=true
		--endpoint-reconciler-type=none
		--allow-privileged=true
		--client-ca-file="$PKI/ca.crt"
		--tls-cert-file="$PKI/apiserver.crt"
		--tls-private-key-file="$PKI/apiserver.key"
		--kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
		--kubelet-client-key="$PKI/apiserver-kubelet-client.key"
		--requestheader-client-ca-file="$PKI/ca.crt"
		--requestheader-allowed-names=front-proxy-client
		--requestheader-username-headers=X-Remote-User
		--requestheader-group-headers=X-Remote-Group
		--requestheader-extra-headers-prefix=X-Remote-Extra-
		--proxy-client-cert-file="$PKI/front-proxy-client.crt"
		--proxy-client-key-file="$PKI/front-proxy-client.key"
		"--kubelet-preferred-address-types=InternalIP,Hostname"
		--service-account-key-file="$PKI/sa.pub"
		--service-account-signing-key-file="$PKI/sa.key"
		--service-account-issuer="$SA_ISSUER"
		--service-cluster-ip-range="$SERVICE_CIDR"
		--shutdown-send-retry-after=true
		--audit-policy-file="$TEMPLATES/audit-policy.yaml"
		--audit-log-path="$LOGS/audit.log"
		--audit-log-format=json
		--audit-log-maxsize=200
		--audit-log-maxbackup=1
		--profiling=false
		--v=1)
}

kube-controller-manager_cmd() {
	local kc=$STATE/controller-manager.kubeconfig
	CMD=("$(bin_path kube-controller-manager)"
		--kubeconfig="$kc"
		--authentication-kubeconfig="$kc"
		--authorization-kubeconfig="$kc"
		--client-ca-file="$PKI/ca.crt"
		--bind-address="$HOST"
		--secure-port=10257
		--cluster-name=kubernetes
		--cluster-signing-cert-file="$PKI/ca.crt"
		--cluster-signing-key-file="$PKI/ca.key"
		--root-ca-file="$PKI/ca.crt"
		--service-account-private-key-file="$PKI/sa.key"
		--use-service-account-credentials=true
		--allocate-node-cidrs=true
		--cluster-cidr="$CLUSTER_CIDR"
		--node-cidr-mask-size="$NODE_CIDR_MASK"
		--service-cluster-ip-range="$SERVICE_CIDR"
		--controllers='*,bootstrapsigner,tokencleaner'
		--leader-elect=false
		--profiling=false
		--v=1)
}

kube-scheduler_cmd() {
	local kc=$STATE/scheduler.kubeconfig
	CMD=("$(bin_path kube-scheduler)"
		--kubeconfig="$kc"
		--authentication-kubeconfig="$kc"
		--authorization-kubeconfig="$kc"
		--bind-address="$HOST"
		--secure-port=10259
		--leader-elect=false
		--profiling=false
		--v=1)
}

registry_cmd() {
	CMD=(docker-registry serve "$STATE/registry/config.yml")
}

registry-auth_cmd() {
	CMD=(docker-registry serve "$AUTH_REGISTRY_DIR/config.yml")
}

containerd_cmd() {
	CMD=("$(containerd_bin)" --config "$STATE/containerd/config.toml")
}

# The 1.6 lane: Debian's containerd 1.6 (and its runc), a second private instance with its own
# root, state and socket, on the same CNI delegate and registries as the dev cluster's
# containerd 2. `deploy/dev/test` runs the lifecycle scenarios and the pod lifecycle tests on
# it; nothing else uses it.
containerd-1.6_cmd() {
	CMD=(/usr/bin/containerd --config "$CONTAINERD_1_6_DIR/config.toml")
}

minikubelet_bin() { printf '%s/release/minikubelet\n' "$CARGO_TARGET_DIR"; }

minikubelet_cmd() {
	# The dev node joins as every kubeadm node does: a TLS bootstrap with the bootstrap token
	# (kube-controller-manager approves and signs its CSR), then its own certificate in
	# STATE/agent/pki and the kubeconfig it writes; a restart reuses (and rotates) them.
	CMD=("$(minikubelet_bin)"
		--bootstrap-kubeconfig "$STATE/bootstrap.kubeconfig"
		--kubeconfig "$NODE_KUBECONFIG"
		--hostname-override "$NODE"
		--node-ip "$HOST"
		--container-runtime-endpoint "$CRI_ENDPOINT"
		--root-dir "$STATE/agent"
		--client-ca-file "$PKI/ca.crt"
		--port 10250)
}

# --- health checks --------------------------------------------------------------------------

health_etcd() { curl -fsS --max-time 3 "http://$HOST:2379/health" 2>/dev/null | grep -q '"health":"true"'; }
health_kube-apiserver() {
	http_ok --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER_URL/readyz"
}
health_kube-controller-manager() { http_ok -k "https://$HOST:10257/healthz"; }
health_kube-scheduler() { http_ok -k "https://$HOST:10259/healthz"; }
health_registry() { http_ok "http://$REGISTRY/v2/"; }
# The auth registry is healthy when it serves /v2/ to our user (and, checked once by
# ensure_private_image, refuses anonymous requests).
health_registry-auth() { http_ok -K <(auth_registry_curl_config) "http://$AUTH_REGISTRY/v2/"; }
health_containerd() { [[ -S $CONTAINERD_SOCK ]] && crictl_ info >/dev/null 2>&1; }
health_containerd-1.6() { [[ -S $CONTAINERD_1_6_SOCK ]] && CRI_ENDPOINT=$CONTAINERD_1_6_ENDPOINT crictl_ info >/dev/null 2>&1; }
health_minikubelet() { http_ok "http://$HOST:10248/healthz"; }

# component_up NAME: our process is running and its health check passes.
component_up() {
	component_pid "$1" >/dev/null && "health_$1"
}

# --- configuration written before a start --------------------------------------------------

prepare_etcd() { mkdir -p "$STATE/etcd" && chmod 700 "$STATE/etcd"; }

prepare_registry() {
	mkdir -p "$CACHE/registry"
	render "$TEMPLATES/registry-config.yml.in" "$STATE/registry/config.yml" \
		"CACHE=$CACHE" "REGISTRY=$REGISTRY"
}

# auth_registry_password: the generated password (created on first use, kept across `up`s).
auth_registry_password() {
	if [[ ! -s $AUTH_REGISTRY_PASSWORD_FILE ]]; then
		mkdir -p "$AUTH_REGISTRY_DIR"
		(
			umask 077
			openssl rand -hex 16 | tr -d '\n' >"$AUTH_REGISTRY_PASSWORD_FILE.tmp"
		)
		mv -f "$AUTH_REGISTRY_PASSWORD_FILE.tmp" "$AUTH_REGISTRY_PASSWORD_FILE"
	fi
	cat "$AUTH_REGISTRY_PASSWORD_FILE"
}

# auth_registry_curl_config: a curl config (-K) with our credentials, so the password never
# shows on a command line.
auth_registry_curl_config() {
	printf 'user = "%s:%s"\n' "$AUTH_REGISTRY_USER" "$(auth_registry_password)"
}

prepare_registry-auth() {
	local htpasswd=$AUTH_REGISTRY_DIR/htpasswd
	mkdir -p "$CACHE/registry-auth" "$AUTH_REGISTRY_DIR"
	auth_registry_password >/dev/null
	# bcrypt salts differ on every run: rewrite the file only when it no longer accepts the
	# password, so a warm `up` leaves the registry (whose config hash covers it) running.
	if ! htpasswd -v -i "$htpasswd" "$AUTH_REGISTRY_USER" <"$AUTH_REGISTRY_PASSWORD_FILE" >/dev/null 2>&1; then
		(
			umask 077
			htpasswd -c -B -i "$htpasswd.tmp" "$AUTH_REGISTRY_USER" <"$AUTH_REGISTRY_PASSWORD_FILE" >/dev/null 2>&1
		) || die "htpasswd could not write $htpasswd.tmp"
		mv -f "$htpasswd.tmp" "$htpasswd"
	fi
	render "$TEMPLATES/registry-auth-config.yml.in" "$AUTH_REGISTRY_DIR/config.yml" \
		"CACHE=$CACHE" "REGISTRY=$AUTH_REGISTRY" "HTPASSWD=$htpasswd"
}

prepare_containerd() {
	local common=("STATE=$STATE" "RUN=$RUN" "REGISTRY=$REGISTRY")
	mkdir -p "$STATE/containerd/root" "$RUN/containerd" "$CNI_CONF_DIR" "$STATE/cni/ipam"
	render_containerd_config "$STATE/containerd/config.toml" "DIR=$STATE/containerd" \
		"RUNDIR=$RUN/containerd" "PAUSE_IMAGE=$PAUSE_IMAGE" "CNI_CONF_DIR=$CNI_CONF_DIR" \
		"NETNS_UNDER_STATE=false" "CNI_CONF_TEMPLATE="
	render "$TEMPLATES/hosts.toml.in" "$STATE/containerd/certs.d/$REGISTRY/hosts.toml" "${common[@]}"
	# containerd reads certs.d on every pull, so this one is not in config_files: adding it
	# needs no containerd restart.
	render "$TEMPLATES/hosts.toml.in" "$STATE/containerd/certs.d/$AUTH_REGISTRY/hosts.toml" \
		"REGISTRY=$AUTH_REGISTRY"
	write_if_changed "$CRICTL_CONFIG" "runtime-endpoint: $CRI_ENDPOINT
image-endpoint: $CRI_ENDPOINT
timeout: 30
"
	prepare_pod_network
	# The bridge plugin (isGateway) turns on IPv4 forwarding; remember the host's value so
	# `down` can put it back.
	[[ -e $STATE/ip_forward.orig ]] || cat /proc/sys/net/ipv4/ip_forward >"$STATE/ip_forward.orig"
}

prepare_containerd-1.6() {
	local dir=$CONTAINERD_1_6_DIR
	mkdir -p "$dir/root" "$RUN/containerd-1.6" "$CNI_CONF_DIR"
	render "$TEMPLATES/containerd-1.6-config.toml.in" "$dir/config.toml" "DIR=$dir" \
		"RUNDIR=$RUN/containerd-1.6" "PAUSE_IMAGE=$PAUSE_IMAGE" "CNI_BIN_DIR=$CNI_BIN_DIR" \
		"CNI_CONF_DIR=$CNI_CONF_DIR" "NETNS_UNDER_STATE=false" "CNI_CONF_TEMPLATE="
	render "$TEMPLATES/hosts.toml.in" "$dir/certs.d/$REGISTRY/hosts.toml" "REGISTRY=$REGISTRY"
	render "$TEMPLATES/hosts.toml.in" "$dir/certs.d/$AUTH_REGISTRY/hosts.toml" "REGISTRY=$AUTH_REGISTRY"
}

prepare_minikubelet() { mkdir -p "$STATE/agent"; }

# --- start / stop ---------------------------------------------------------------------------

# config_files NAME: files whose content the running process depends on.
config_files() {
	case $1 in
	registry) echo "$STATE/registry/config.yml" ;;
	registry-auth) echo "$AUTH_REGISTRY_DIR/config.yml $AUTH_REGISTRY_DIR/htpasswd" ;;
	containerd) echo "$STATE/containerd/config.toml $STATE/containerd/certs.d/$REGISTRY/hosts.toml" ;;
	containerd-1.6) echo "$CONTAINERD_1_6_DIR/config.toml" ;;
	kube-apiserver) echo "$TEMPLATES/audit-policy.yaml" ;;
	esac
}

# desired_record: the command line plus a hash of the config files (CMD and name in scope).
desired_record() {
	local files
	files=$(config_files "$name")
	printf '%s' "${CMD[*]}"
	# shellcheck disable=SC2086 # a list of paths without spaces
	[[ -z $files ]] || printf ' # config %s' "$(cat $files | sha256sum | cut -d' ' -f1)"
}

# ensure_component NAME: starts NAME unless it is already up with the same command line and
# config (a change restarts it); then waits for its health check.
ensure_component() {
	local name=$1 pid
	local -a CMD
	if declare -F "prepare_$name" >/dev/null; then "prepare_$name"; fi
	"${name}_cmd"
	if pid=$(component_pid "$name"); then
		if [[ $(cat "$PIDS/$name.args" 2>/dev/null) != "$(desired_record)" ]]; then
			log "$name: command line or config changed, restarting"
			stop_component "$name"
		elif "health_$name" >/dev/null 2>&1; then
			log "$name: already running (pid $pid)"
			return 0
		else
			log "$name: running (pid $pid), waiting for health"
			wait_healthy "$name" "$(startup_timeout "$name")" "health_$name"
			return 0
		fi
	fi
	[[ -x ${CMD[0]} ]] || command -v "${CMD[0]}" >/dev/null || die "$name: ${CMD[0]} not found"
	check_port_free "$name"
	log "starting $name"
	start_bg "$name" "${CMD[@]}"
	desired_record >"$PIDS/$name.args"
	wait_healthy "$name" "$(startup_timeout "$name")" "health_$name"
	log "$name: up (pid $(<"$(pid_file "$name")"))"
}

component_port() {
	case $1 in
	etcd) echo 2379 ;;
	kube-apiserver) echo 6443 ;;
	kube-controller-manager) echo 10257 ;;
	kube-scheduler) echo 10259 ;;
	registry) echo 5000 ;;
	registry-auth) echo 5001 ;;
	minikubelet) echo 10250 ;;
	metrics-server) echo "$METRICS_SERVER_PORT" ;;
	csi-provisioner) echo "$CSI_PROVISIONER_PORT" ;;
	*) return 1 ;;
	esac
}

# check_port_free NAME: a clear error when something else (not ours) holds the port.
check_port_free() {
	local port
	port=$(component_port "$1") || return 0
	if ss -Hltn "sport = :$port" 2>/dev/null | grep -q .; then
		die "$1: port $HOST:$port is already in use by a process this script did not start ($(ss -Hltnp "sport = :$port" | grep -o 'users:.*' | head -n 1))"
	fi
}

start_one() {
	local name=$1
	case $name in
	etcd) ensure_component etcd ;;
	kube-apiserver)
		ensure_component kube-apiserver
		apply_manifests
		;;
	minikubelet) cmd_agent ;;
	metrics-server) start_metrics_server ;;
	csi-controller | csi-provisioner) start_csi ;;
	registry-auth)
		ensure_component registry-auth
		ensure_private_image
		log "images: $PRIVATE_IMAGE (user $AUTH_REGISTRY_USER, password in $AUTH_REGISTRY_PASSWORD_FILE)"
		;;
	containerd)
		ensure_component containerd
		;;
	containerd-1.6)
		ensure_component containerd-1.6
		CRI_ENDPOINT=$CONTAINERD_1_6_ENDPOINT verify_runtime_images
		;;
	*) ensure_component "$name" ;;
	esac
}

stop_one() {
	local name=$1
	case $name in
	containerd) stop_component containerd 60 ;;
	containerd-1.6) stop_containerd_1_6 ;;
	minikubelet) cmd_agent_stop ;;
	metrics-server) stop_metrics_server ;;
	csi-controller) stop_csi_controller ;;
	*) stop_component "$name" ;;
	esac
}

cmd_start() {
	local name=${1:-}
	is_component "$name" || die "usage: cluster start NAME (one of: ${COMPONENTS[*]})"
	[[ $name == minikubelet ]] || ensure_binaries
	[[ $name == minikubelet ]] || ensure_pki
	start_one "$name"
}

cmd_stop() {
	local name=${1:-}
	is_component "$name" || die "usage: cluster stop NAME (one of: ${COMPONENTS[*]})"
	if component_pid "$name" >/dev/null || [[ $name == minikubelet ]]; then
		stop_one "$name"
	else
		log "$name: not running"
		rm -f "$(pid_file "$name")"
	fi
}

cmd_restart() {
	local name=${1:-}
	is_component "$name" || die "usage: cluster restart NAME (one of: ${COMPONENTS[*]})"
	cmd_stop "$name"
	cmd_start "$name"
}

# --- RBAC and bootstrap manifests -----------------------------------------------------------

# kubectl_: kubectl on the dev cluster, or on the cluster of the caller's KUBECTL_KUBECONFIG.
kubectl_() { "$(bin_path kubectl)" --kubeconfig "${KUBECTL_KUBECONFIG:-$STATE/admin.kubeconfig}" "$@"; }

apply_manifests() {
	local token out=$STATE/manifests f stamp
	token=$(<"$PKI/bootstrap-token")
	mkdir -p "$out"
	for f in "$MANIFESTS"/*.yaml; do
		write_if_changed "$out/$(basename "$f")" "$(<"$f")"$'\n'
	done
	render "$MANIFESTS/30-bootstrap-token.yaml.in" "$out/30-bootstrap-token.yaml" \
		"TOKEN_ID=${token%%.*}" "TOKEN_SECRET=${token#*.}"
	render "$MANIFESTS/40-cluster-info.yaml.in" "$out/40-cluster-info.yaml" \
		"CA_DATA=$(b64 "$PKI/ca.crt")" "SERVER=$APISERVER_URL"
	render "$MANIFESTS/45-kubeadm-config.yaml.in" "$out/45-kubeadm-config.yaml" \
		"K8S_VERSION=$K8S_VERSION" "ENDPOINT=${APISERVER_URL#https://}" "REGISTRY=$REGISTRY" \
		"CLUSTER_CIDR=$CLUSTER_CIDR" "SERVICE_CIDR=$SERVICE_CIDR" "CLUSTER_DNS=$CLUSTER_DNS"
	# Re-applied when the manifests or the apiserver/etcd processes changed (kubectl apply
	# costs about a second, and a warm `up` should not).
	stamp="$(cat "$out"/*.yaml | sha256sum | cut -d' ' -f1) $(component_pid etcd || true) $(component_pid kube-apiserver || true)"
	[[ $(cat "$out/.applied" 2>/dev/null) == "$stamp" ]] && return 0
	if ! kubectl_ apply -f "$out" >"$LOGS/manifests.log" 2>&1; then
		show_log_tail "$LOGS/manifests.log"
		die "applying $out failed (log: $LOGS/manifests.log)"
	fi
	printf '%s\n' "$stamp" >"$out/.applied"
	log "RBAC and bootstrap-token manifests applied"
}
