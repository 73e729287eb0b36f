# shellcheck shell=bash
# PKI under STATE/pki laid out as kubeadm does, made with openssl, and the kubeconfigs.
# Certificates are kept across `up`/`down`; a missing, expiring (< 1 day) or foreign-signed
# leaf is re-minted, everything else is left alone.

CA_DAYS=3650
CERT_DAYS=365

APISERVER_SANS="DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:127.0.0.1,IP:$SERVICE_IP"

ensure_ca() {
	[[ -s $PKI/ca.crt && -s $PKI/ca.key ]] && return 0
	log "creating cluster CA in $PKI"
	mkdir -p "$PKI"
	(
		umask 077
		openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days "$CA_DAYS" \
			-keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=kubernetes" \
			-addext "basicConstraints=critical,CA:TRUE" \
			-addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
			-addext "subjectKeyIdentifier=hash" 2>/dev/null
	)
	chmod 644 "$PKI/ca.crt"
}

# cert_valid CRT: exists, signed by our CA and valid for at least one more day.
cert_valid() {
	[[ -s $1 && -s ${1%.crt}.key ]] &&
		openssl x509 -in "$1" -noout -checkend 86400 >/dev/null 2>&1 &&
		openssl verify -CAfile "$PKI/ca.crt" "$1" >/dev/null 2>&1
}

# ensure_cert BASE SUBJECT USAGE [SANS]: BASE.crt/BASE.key signed by the cluster CA.
# USAGE is serverAuth or clientAuth; SUBJECT like /O=group/CN=name.
ensure_cert() {
	local base=$1 subject=$2 usage=$3 sans=${4:-} ext
	cert_valid "$base.crt" && return 0
	log "minting certificate $(basename "$base") ($subject)"
	mkdir -p "$(dirname "$base")"
	ext=$(mktemp)
	{
		echo "basicConstraints=critical,CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		echo "extendedKeyUsage=$usage"
		echo "authorityKeyIdentifier=keyid"
		[[ -z $sans ]] || echo "subjectAltName=$sans"
	} >"$ext"
	(
		umask 077
		openssl req -new -newkey rsa:2048 -nodes -keyout "$base.key" -out "$base.csr" \
			-subj "$subject" 2>/dev/null
		openssl x509 -req -in "$base.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
			-set_serial "0x$(openssl rand -hex 16)" -days "$CERT_DAYS" -sha256 \
			-extfile "$ext" -out "$base.crt" 2>/dev/null
	)
	chmod 644 "$base.crt"
	rm -f "$base.csr" "$ext"
}

ensure_sa_keys() {
	[[ -s $PKI/sa.key && -s $PKI/sa.pub ]] && return 0
	log "creating service-account key pair"
	(
		umask 077
		openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
	)
	openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# The bootstrap token (id.secret) is minted once and kept with the PKI.
ensure_bootstrap_token() {
	[[ -s $PKI/bootstrap-token ]] && return 0
	local id secret
	id=$(openssl rand -hex 3)
	secret=$(openssl rand -hex 8)
	(
		umask 077
		printf '%s.%s\n' "$id" "$secret" >"$PKI/bootstrap-token"
	)
}

b64() { base64 -w0 <"$1"; }

# kubeconfig_content USER [CRT KEY | token TOKEN]: a kubeconfig with embedded credentials.
kubeconfig_content() {
	local user=$1 creds
	if [[ $2 == token ]]; then
		creds="    token: $3"
	else
		creds="    client-certificate-data: $(b64 "$2")
    client-key-data: $(b64 "$3")"
	fi
	cat <<EOF
apiVersion: v1
kind: Config
clusters:
- name: minikubelet-dev
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $user
  user:
$creds
contexts:
- name: $user@minikubelet-dev
  context:
    cluster: minikubelet-dev
    user: $user
current-context: $user@minikubelet-dev
EOF
}

# write_kubeconfig FILE USER CRT KEY (mode 0600, rewritten only when it changes).
write_kubeconfig() {
	local file=$1
	shift
	write_if_changed "$file" "$(kubeconfig_content "$@")"$'\n'
	chmod 600 "$file"
}

# ensure_node_credentials NAME KUBECONFIG: node client cert + kubeconfig for node NAME.
ensure_node_credentials() {
	local name=$1 kubeconfig=$2
	[[ $name =~ ^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$ ]] || die "invalid node name: $name"
	ensure_cert "$PKI/nodes/$name" "/O=system:nodes/CN=system:node:$name" clientAuth
	write_kubeconfig "$kubeconfig" "system:node:$name" "$PKI/nodes/$name.crt" "$PKI/nodes/$name.key"
}

ensure_pki() {
	ensure_ca
	ensure_sa_keys
	ensure_bootstrap_token
	ensure_cert "$PKI/apiserver" "/CN=kube-apiserver" serverAuth "$APISERVER_SANS"
	ensure_cert "$PKI/apiserver-kubelet-client" "/O=kubeadm:cluster-admins/CN=kube-apiserver-kubelet-client" clientAuth
	ensure_cert "$PKI/admin" "/O=system:masters/CN=kubernetes-admin" clientAuth
	ensure_cert "$PKI/controller-manager" "/CN=system:kube-controller-manager" clientAuth
	ensure_cert "$PKI/scheduler" "/CN=system:kube-scheduler" clientAuth
	write_kubeconfig "$STATE/admin.kubeconfig" kubernetes-admin "$PKI/admin.crt" "$PKI/admin.key"
	write_kubeconfig "$STATE/controller-manager.kubeconfig" system:kube-controller-manager \
		"$PKI/controller-manager.crt" "$PKI/controller-manager.key"
	write_kubeconfig "$STATE/scheduler.kubeconfig" system:kube-scheduler "$PKI/scheduler.crt" "$PKI/scheduler.key"
	write_kubeconfig "$STATE/bootstrap.kubeconfig" kubelet-bootstrap token "$(<"$PKI/bootstrap-token")"
	ensure_metrics_server_pki
}

# Verb: node-kubeconfig NAME
cmd_node_kubeconfig() {
	local name=${1:-}
	[[ -n $name ]] || die "usage: cluster node-kubeconfig NAME"
	[[ -s $PKI/ca.crt ]] || die "no cluster CA yet: run 'cluster up' first"
	ensure_node_credentials "$name" "$STATE/nodes/$name.kubeconfig" >&2
	printf '%s\n' "$STATE/nodes/$name.kubeconfig"
}
