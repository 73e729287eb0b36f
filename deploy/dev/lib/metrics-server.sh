# shellcheck shell=bash
# metrics-server: built from deploy/go/metrics-server, run as a process on 127.0.0.1 and served
# through the API server's aggregation layer as v1beta1.metrics.k8s.io, so `kubectl top` works.
#
# Routing stays on loopback: the APIService points at an ExternalName Service `localhost`, which
# the aggregator's default (cluster-IP) resolver dials directly as https://localhost:PORT (no
# kube-proxy, no Endpoints, no --enable-aggregator-routing). The serving certificate, signed by
# the cluster CA, names metrics-server.kube-system.svc, which is what the aggregator verifies.
# The API server authenticates to it with the front-proxy client certificate
# (--proxy-client-cert-file, --requestheader-*); metrics-server scrapes each node's
# /metrics/resource as system:metrics-server (a client certificate; agents need
# --client-ca-file) on the node's InternalIP and status port, trusting self-signed agent
# certificates (--kubelet-insecure-tls).

METRICS_SERVER_VERSION=$(go_mod_version metrics-server sigs.k8s.io/metrics-server)
METRICS_SERVER_PORT=${MKL_METRICS_SERVER_PORT:-4443}
METRICS_SERVER_KUBECONFIG=$STATE/metrics-server.kubeconfig

build_metrics_server() {
	local out
	out=$(bin_path metrics-server)
	[[ -x $out ]] && return 0
	require_go metrics-server
	log "building metrics-server $METRICS_SERVER_VERSION"
	mkdir -p "$BIN"
	CGO_ENABLED=0 go_build metrics-server metrics-server -trimpath \
		-ldflags "-s -w -X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION" \
		-o "$out.tmp" sigs.k8s.io/metrics-server/cmd/metrics-server
	mv -f "$out.tmp" "$out"
}

# The front-proxy client (the API server's identity towards aggregated servers), the
# metrics-server serving certificate and its client identity.
ensure_metrics_server_pki() {
	ensure_cert "$PKI/front-proxy-client" "/CN=front-proxy-client" clientAuth
	ensure_cert "$PKI/metrics-server" "/CN=metrics-server" serverAuth \
		"DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
	ensure_cert "$PKI/metrics-server-client" "/CN=system:metrics-server" clientAuth
	write_kubeconfig "$METRICS_SERVER_KUBECONFIG" system:metrics-server \
		"$PKI/metrics-server-client.crt" "$PKI/metrics-server-client.key"
}

metrics-server_cmd() {
	# shellcheck disable=SC2034 # CMD is read by ensure_component
	CMD=("$(bin_path metrics-server)"
		--kubeconfig="$METRICS_SERVER_KUBECONFIG"
		--authentication-kubeconfig="$METRICS_SERVER_KUBECONFIG"
		--authorization-kubeconfig="$METRICS_SERVER_KUBECONFIG"
		--bind-address="$HOST"
		--secure-port="$METRICS_SERVER_PORT"
		--tls-cert-file="$PKI/metrics-server.crt"
		--tls-private-key-file="$PKI/metrics-server.key"
		--kubelet-insecure-tls
		--kubelet-preferred-address-types=InternalIP
		--kubelet-use-node-status-port
		--metric-resolution=15s
		--profiling=false
		--v=1)
}

health_metrics-server() { http_ok -k "https://$HOST:$METRICS_SERVER_PORT/livez"; }

# aggregation_configured: the running API server authenticates front-proxy requests (it
# publishes its requestheader CA for aggregated servers).
aggregation_configured() {
	kubectl_ -n kube-system get configmap extension-apiserver-authentication \
		-o 'jsonpath={.data.requestheader-client-ca-file}' 2>/dev/null | grep -q 'BEGIN CERTIFICATE'
}

# The Service and APIService exist only while metrics-server runs: an unavailable aggregated
# API stalls namespace deletion and makes discovery noisy for everyone.
register_metrics_api() {
	local out=$STATE/manifests/metrics-server-apiservice.yaml
	mkdir -p "$STATE/manifests"
	render "$TEMPLATES/metrics-server-apiservice.yaml.in" "$out" \
		"CA_DATA=$(b64 "$PKI/ca.crt")" "PORT=$METRICS_SERVER_PORT"
	kubectl_ apply -f "$out" >>"$LOGS/manifests.log" 2>&1 || {
		show_log_tail "$LOGS/manifests.log"
		die "registering v1beta1.metrics.k8s.io failed (log: $LOGS/manifests.log)"
	}
}

unregister_metrics_api() {
	component_up kube-apiserver || return 0
	kubectl_ delete apiservice v1beta1.metrics.k8s.io --ignore-not-found >/dev/null 2>&1 || true
	kubectl_ -n kube-system delete service metrics-server --ignore-not-found >/dev/null 2>&1 || true
}

start_metrics_server() {
	build_metrics_server
	ensure_metrics_server_pki
	apply_manifests # its RBAC
	ensure_component metrics-server
	if aggregation_configured; then
		register_metrics_api
		log "metrics-server: serving metrics.k8s.io on $HOST:$METRICS_SERVER_PORT (kubectl top)"
	else
		unregister_metrics_api
		warn "metrics-server runs, but kube-apiserver lacks the aggregation-layer flags: run 'deploy/dev/cluster restart kube-apiserver' for kubectl top"
	fi
}

stop_metrics_server() {
	unregister_metrics_api
	stop_component metrics-server
}
