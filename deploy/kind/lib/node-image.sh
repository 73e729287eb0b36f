# shellcheck shell=bash
# The kind node image: deploy/kind/node/rootfs.sh makes its root filesystem, which goes into
# the private dockerd with `docker import` (ENTRYPOINT the node's entrypoint, CMD /sbin/init;
# docker 20.10's import takes no STOPSIGNAL, and kind removes nodes with `docker rm -f`
# anyway). The image's label
# io.minikubelet.inputs is the sha256 of everything it is made of, so an unchanged image is
# never rebuilt; a changed one replaces the tag.

NODE_DIR=$KIND_DIR/node
NODE_REPO=minikubelet/kind-node
FLANNEL_VERSION=$(go_mod_version flannel github.com/flannel-io/flannel)
KIND_VERSION=$(go_mod_version kind sigs.k8s.io/kind)
FLANNEL_IMAGE=127.0.0.1:5000/kind/flannel:$FLANNEL_VERSION
# The etcd tag kubeadm of the pinned release asks for (`kubeadm config images list`); the
# image holds the project's etcd build at ETCD_VERSION, a later patch release of that minor.
KUBEADM_ETCD_TAG=${MKL_KUBEADM_ETCD_TAG:-3.6.6-0}
KIND_PACKAGES=("mmdebstrap mmdebstrap" "jq jq" "ctr containerd")

node_image() { printf '%s:%s\n' "$NODE_REPO" "$K8S_VERSION"; }

build_kind_cli() { CGO_ENABLED=0 build_pinned kind kind sigs.k8s.io/kind -ldflags "-s -w"; }
# flanneld's udp backend is cgo; the iptables image is the same Debian release as the host.
build_flanneld() {
	CGO_ENABLED=1 build_pinned flanneld flannel github.com/flannel-io/flannel \
		-ldflags "-s -w -X github.com/flannel-io/flannel/pkg/version.Version=$FLANNEL_VERSION"
}

# node_images_list: NODE_IMAGES for rootfs.sh, "REF=OCI_LAYOUT" pairs: the kubeadm lane's
# images (images.sh: build_kubeadm_images) under the names kubeadm asks for, and flanneld.
node_images_list() {
	local image repo tag name
	build_kubeadm_images
	IMAGE_BINARY=$(bin_path flanneld) IMAGE_BINARY_AT=/usr/local/bin/flanneld \
		build_image iptables "$FLANNEL_VERSION" '' '' kind/flannel
	NODE_IMAGES=("$FLANNEL_IMAGE=$OCI_CACHE/kind_flannel-$FLANNEL_VERSION")
	for image in "${KUBEADM_IMAGE_SET[@]}"; do
		repo=${image% *} tag=${image#* } name=${repo#kubeadm/}
		case $name in
		etcd) name=etcd:$KUBEADM_ETCD_TAG ;;
		coredns) name=coredns/coredns:$tag ;;
		*) name=$name:$tag ;;
		esac
		NODE_IMAGES+=("registry.k8s.io/$name=$OCI_CACHE/${repo//\//_}-$tag")
	done
}

# node_image_inputs: what the node image is made of, one line each (its cache key).
node_image_inputs() {
	local entry
	find "$NODE_DIR" -type f -print0 | sort -z | xargs -0 sha256sum
	sha256sum "$DEPLOY_DIR/systemd/kubelet.service" \
		"$(minikubelet_bin)" "$(minikubelet_cni_bin)" "$(bin_path kubeadm)" "$(bin_path kubectl)" \
		"$(bin_path crictl)"
	for entry in "${NODE_IMAGES[@]}"; do
		printf '%s %s\n' "${entry%%=*}" "$(layout_digest "${entry#*=}")"
	done
	printf 'suite %s\n' "${NODE_SUITE:-bookworm}"
}

# The agent and its CNI delegate: cargo's release build, or the binaries MKL_KIND_AGENT_BIN
# and MKL_KIND_CNI_BIN name (the integration test passes the ones cargo built for it).
minikubelet_bin() { printf '%s\n' "${MKL_KIND_AGENT_BIN:-$CARGO_TARGET_DIR/release/minikubelet}"; }
minikubelet_cni_bin() { printf '%s\n' "${MKL_KIND_CNI_BIN:-$CARGO_TARGET_DIR/release/minikubelet-cni}"; }

# build_minikubelet: cargo build --release (a no-op when nothing changed), unless both
# binaries are given.
build_minikubelet() {
	if [[ -n ${MKL_KIND_AGENT_BIN:-} && -n ${MKL_KIND_CNI_BIN:-} ]]; then
		[[ -x $MKL_KIND_AGENT_BIN && -x $MKL_KIND_CNI_BIN ]] ||
			die "MKL_KIND_AGENT_BIN or MKL_KIND_CNI_BIN is not an executable"
		return 0
	fi
	command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH (needed to build minikubelet)"
	log "building minikubelet (cargo build --release -p minikubelet)"
	if ! (cd "$REPO_ROOT" && CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo build --release -p minikubelet) \
		>>"$LOGS/agent-build.log" 2>&1; then
		show_log_tail "$LOGS/agent-build.log" 40
		die "building minikubelet failed (log: $LOGS/agent-build.log)"
	fi
}

node_image_key() { docker_ image inspect --format '{{index .Config.Labels "io.minikubelet.inputs"}}' "$(node_image)" 2>/dev/null; }

# ensure_node_image: every input built, then the image made unless dockerd has it with the
# same key.
ensure_node_image() {
	local key rootfs t0=$SECONDS
	local -a NODE_IMAGES
	install_missing "${KIND_PACKAGES[@]}"
	ensure_binaries
	build_coredns
	build_flanneld
	build_minikubelet
	node_images_list
	key=$(node_image_inputs | sha256sum | cut -d' ' -f1)
	if [[ $(node_image_key) == "$key" ]]; then
		return 0
	fi
	log "building the kind node image $(node_image) (log: $LOGS/node-image.log)"
	mkdir -p "$CACHE/kind"
	rootfs=$(mktemp -d "$CACHE/kind/.rootfs.XXXXXX")
	if ! NODE_VERSION=$K8S_VERSION MINIKUBELET_BIN=$(minikubelet_bin) \
		MINIKUBELET_CNI_BIN=$(minikubelet_cni_bin) KUBEADM_BIN=$(bin_path kubeadm) \
		KUBECTL_BIN=$(bin_path kubectl) CRICTL_BIN=$(bin_path crictl) NODE_IMAGES="${NODE_IMAGES[*]}" \
		"$NODE_DIR/rootfs.sh" "$rootfs" >>"$LOGS/node-image.log" 2>&1; then
		rm -rf "$rootfs"
		show_log_tail "$LOGS/node-image.log"
		die "building the node's root filesystem failed (log: $LOGS/node-image.log)"
	fi
	if ! tar -C "$rootfs" --numeric-owner --xattrs -cf - . |
		docker_ import \
			--change 'ENTRYPOINT ["/usr/local/bin/entrypoint"]' \
			--change 'CMD ["/sbin/init"]' \
			--change 'ENV container=docker' \
			--change "LABEL io.minikubelet.inputs=$key" \
			--change "LABEL io.minikubelet.kind-version=$KIND_VERSION" \
			- "$(node_image)" >>"$LOGS/node-image.log" 2>&1; then
		rm -rf "$rootfs"
		show_log_tail "$LOGS/node-image.log"
		die "docker import of the node image failed (log: $LOGS/node-image.log)"
	fi
	rm -rf "$rootfs"
	docker_ image prune -f >/dev/null 2>&1 || true
	log "node image $(node_image) built in $((SECONDS - t0))s"
}
