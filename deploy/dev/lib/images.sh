# shellcheck shell=bash
# The project's own images (pause, busybox), built as OCI layouts with
# deploy/images/build-oci.sh and pushed to the local registry; a copy of busybox goes to the
# auth registry as PRIVATE_IMAGE.

IMAGES_DIR=$DEPLOY_DIR/images
OCI_CACHE=$CACHE/oci

# image_inputs NAME: the files and tool versions an image is built from (its cache key).
image_inputs() {
	sha256sum "$IMAGES_DIR/build-oci.sh" "$IMAGES_DIR/$1/"*
	case $1 in
	pause) gcc -dumpfullversion ;;
	busybox) sha256sum /bin/busybox ;;
	grpc-health) go version ;;
	# One program of the project's builds (deploy/images/binary, deploy/images/iptables).
	binary | iptables) sha256sum "${IMAGE_BINARY:?}" && printf '%s\n' "${IMAGE_BINARY_AT:?}" ;;
	# The e2e suite's images (lib/conformance.sh): agnhost's binary and its Debian release;
	# nonewprivs and nonroot start from the busybox userland.
	agnhost) sha256sum "${AGNHOST_BIN:?}" && printf '%s\n' "${AGNHOST_SUITE:-bookworm}" ;;
	nonewprivs | nonroot) image_inputs busybox && gcc -dumpfullversion ;;
	e2e-busybox) sha256sum "${E2E_BUSYBOX_BIN:?}" ;;
	esac
}

# build_image NAME TAG ENTRYPOINT CMD [REPO]: rebuilds CACHE/oci/REPO-TAG (REPO defaults to
# NAME; a / becomes _) from images/NAME when its inputs changed. The repository name is
# recorded in the image config, so another REPO gives the same layer but another digest.
# OCI_USER (see build-oci.sh) sets the config's User and is part of the cache key.
build_image() {
	local name=$1 tag=$2 entrypoint=$3 cmd=$4 repo=${5:-$1}
	local out=$OCI_CACHE/${repo//\//_}-$tag key rootfs
	key=$({
		image_inputs "$name"
		[[ -z ${OCI_USER:-} ]] || printf 'user %s\n' "$OCI_USER"
	} | sha256sum | cut -d' ' -f1)
	if [[ -f $out/index.json && $(cat "$out.key" 2>/dev/null) == "$key" ]]; then
		return 0
	fi
	log "building image $repo:$tag"
	mkdir -p "$OCI_CACHE"
	rootfs=$(mktemp -d "$OCI_CACHE/.rootfs-$name.XXXXXX")
	if ! "$IMAGES_DIR/$name/rootfs.sh" "$rootfs" >>"$LOGS/images.log" 2>&1 ||
		! OCI_OUT=$out "$IMAGES_DIR/build-oci.sh" "$rootfs" "$repo:$tag" "$entrypoint" "$cmd" >>"$LOGS/images.log" 2>&1; then
		rm -rf "$rootfs"
		show_log_tail "$LOGS/images.log"
		die "building image $repo:$tag failed (log: $LOGS/images.log)"
	fi
	rm -rf "$rootfs"
	printf '%s\n' "$key" >"$out.key"
}

# layout_digest DIR: the manifest digest recorded in an OCI layout's index.json.
layout_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }

# registry_digest NAME TAG [HOST [CURL_ARG...]]: the digest the registry at HOST (default
# REGISTRY) serves for NAME:TAG (empty if none).
registry_digest() {
	local name=$1 tag=$2 host=${3:-$REGISTRY}
	shift $(($# > 2 ? 3 : 2))
	curl -fsS --max-time 5 -I "$@" \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$host/v2/$name/manifests/$tag" 2>/dev/null |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# push_image NAME TAG: skopeo copy to the registry, skipped when it has the same digest.
# NAME may hold slashes (e2e/e2e-test-images/agnhost); its layout is build_image's.
push_image() {
	local name=$1 tag=$2 out=$OCI_CACHE/${1//\//_}-$2 want have
	want=$(layout_digest "$out")
	have=$(registry_digest "$name" "$tag" || true)
	if [[ $have == "$want" ]]; then
		return 0
	fi
	log "pushing $REGISTRY/$name:$tag ($want)"
	if ! skopeo copy --quiet --dest-tls-verify=false "oci:$out:$tag" "docker://$REGISTRY/$name:$tag" \
		>>"$LOGS/images.log" 2>&1; then
		show_log_tail "$LOGS/images.log"
		die "pushing $name:$tag failed (log: $LOGS/images.log)"
	fi
	have=$(registry_digest "$name" "$tag" || true)
	[[ $have == "$want" ]] || warn "registry serves $name:$tag as ${have:-nothing}, built $want"
}

# private_digest: the digest the auth registry serves for PRIVATE_IMAGE (empty if none).
private_digest() {
	local ref=${PRIVATE_IMAGE#"$AUTH_REGISTRY"/}
	registry_digest "${ref%:*}" "${ref##*:}" "$AUTH_REGISTRY" -K <(auth_registry_curl_config)
}

# anonymous_status: the HTTP status of an unauthenticated manifest request for PRIVATE_IMAGE.
anonymous_status() {
	local ref=${PRIVATE_IMAGE#"$AUTH_REGISTRY"/}
	curl -sS --max-time 5 -o /dev/null -w '%{http_code}' \
		"http://$AUTH_REGISTRY/v2/${ref%:*}/manifests/${ref##*:}" 2>/dev/null || true
}

# ensure_private_image builds the busybox layer again as private/busybox (the same layer, but a digest of its
# own, so tests can remove it from containerd without touching BUSYBOX_IMAGE) and pushed to
# the auth registry as PRIVATE_IMAGE with skopeo and an auth file (the password stays off
# command lines), skipped when the digest matches; then checks that the registry refuses
# anonymous pulls.
ensure_private_image() {
	local out=$OCI_CACHE/private_busybox-1.35 want have code authfile=$AUTH_REGISTRY_DIR/auth.json
	build_image busybox 1.35 '' '["sh"]' private/busybox
	want=$(layout_digest "$out")
	have=$(private_digest || true)
	if [[ $have != "$want" ]]; then
		log "pushing $PRIVATE_IMAGE ($want)"
		write_if_changed "$authfile" "$(jq -n --arg host "$AUTH_REGISTRY" \
			--arg auth "$(printf '%s:%s' "$AUTH_REGISTRY_USER" "$(auth_registry_password)" | base64 -w0)" \
			'{auths: {($host): {auth: $auth}}}')"$'\n'
		if ! skopeo copy --quiet --dest-tls-verify=false --dest-authfile "$authfile" \
			"oci:$out:1.35" "docker://$PRIVATE_IMAGE" >>"$LOGS/images.log" 2>&1; then
			show_log_tail "$LOGS/images.log"
			die "pushing $PRIVATE_IMAGE failed (log: $LOGS/images.log)"
		fi
		have=$(private_digest || true)
		[[ $have == "$want" ]] || warn "$AUTH_REGISTRY serves $PRIVATE_IMAGE as ${have:-nothing}, built $want"
	fi
	code=$(anonymous_status)
	[[ $code == 401 ]] || die "$AUTH_REGISTRY answers an anonymous pull of $PRIVATE_IMAGE with HTTP $code, not 401"
}

# KUBEADM_IMAGE_SET: "REPO TAG" of every image kubeadm's control plane and addons run, as
# build_kubeadm_images builds them (the kubeadm lane pushes them, the kind node image
# imports them).
KUBEADM_IMAGE_SET=()

# build_kubeadm_images: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
# CoreDNS (deploy/images/binary), kube-proxy (deploy/images/iptables) and pause, from the
# binaries build.sh makes (ensure_binaries, build_coredns); each skipped when unchanged.
build_kubeadm_images() {
	local name
	KUBEADM_IMAGE_SET=()
	for name in kube-apiserver kube-controller-manager kube-scheduler etcd; do
		IMAGE_BINARY=$(bin_path "$name") IMAGE_BINARY_AT=/usr/local/bin/$name \
			build_image binary "$(version_of "$name")" '' '' "kubeadm/$name"
		KUBEADM_IMAGE_SET+=("kubeadm/$name $(version_of "$name")")
	done
	IMAGE_BINARY=$(bin_path coredns) IMAGE_BINARY_AT=/coredns \
		build_image binary "$COREDNS_VERSION" '["/coredns"]' '' kubeadm/coredns
	IMAGE_BINARY=$(bin_path kube-proxy) IMAGE_BINARY_AT=/usr/local/bin/kube-proxy \
		build_image iptables "$K8S_VERSION" '' '' kubeadm/kube-proxy
	build_image pause 3.10.1 '["/pause"]' '' kubeadm/pause
	KUBEADM_IMAGE_SET+=("kubeadm/coredns $COREDNS_VERSION" "kubeadm/kube-proxy $K8S_VERSION"
		"kubeadm/pause 3.10.1")
}

ensure_images() {
	build_image pause 1.0 '["/pause"]' ''
	build_image busybox 1.35 '' '["sh"]'
	build_image grpc-health 1.0 '["/grpc-health"]' ''
	push_image pause 1.0
	push_image busybox 1.35
	push_image grpc-health 1.0
	log "images: $PAUSE_IMAGE, $BUSYBOX_IMAGE"
}
