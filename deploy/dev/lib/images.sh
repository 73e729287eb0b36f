# shellcheck shell=bash
# The project's own images (pause, busybox), built as OCI layouts with
# deploy/images/build-oci.sh and pushed to the local registry.

IMAGES_DIR=$DEPLOY_DIR/images
OCI_CACHE=$CACHE/oci

# image_inputs NAME: the files and tool versions an image is built from (its cache key).
image_inputs() {
	sha256sum "$IMAGES_DIR/build-oci.sh" "$IMAGES_DIR/$1/"*
	case $1 in
	pause) gcc -dumpfullversion ;;
	busybox) sha256sum /bin/busybox ;;
	esac
}

# build_image NAME TAG ENTRYPOINT CMD: rebuilds CACHE/oci/NAME-TAG when its inputs changed.
build_image() {
	local name=$1 tag=$2 entrypoint=$3 cmd=$4
	local out=$OCI_CACHE/$name-$tag key rootfs
	key=$(image_inputs "$name" | sha256sum | cut -d' ' -f1)
	if [[ -f $out/index.json && $(cat "$OCI_CACHE/$name-$tag.key" 2>/dev/null) == "$key" ]]; then
		return 0
	fi
	log "building image $name:$tag"
	mkdir -p "$OCI_CACHE"
	rootfs=$(mktemp -d "$OCI_CACHE/.rootfs-$name.XXXXXX")
	if ! "$IMAGES_DIR/$name/rootfs.sh" "$rootfs" >>"$LOGS/images.log" 2>&1 ||
		! OCI_OUT=$out "$IMAGES_DIR/build-oci.sh" "$rootfs" "$name:$tag" "$entrypoint" "$cmd" >>"$LOGS/images.log" 2>&1; then
		rm -rf "$rootfs"
		show_log_tail "$LOGS/images.log"
		die "building image $name:$tag failed (log: $LOGS/images.log)"
	fi
	rm -rf "$rootfs"
	printf '%s\n' "$key" >"$OCI_CACHE/$name-$tag.key"
}

# layout_digest DIR: the manifest digest recorded in an OCI layout's index.json.
layout_digest() { jq -r '.manifests[0].digest' "$1/index.json"; }

# registry_digest NAME TAG: the digest the registry serves for NAME:TAG (empty if none).
registry_digest() {
	curl -fsS --max-time 5 -I \
		-H 'Accept: application/vnd.oci.image.manifest.v1+json' \
		-H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		"http://$REGISTRY/v2/$1/manifests/$2" 2>/dev/null |
		tr -d '\r' | awk 'tolower($1) == "docker-content-digest:" { print $2 }'
}

# push_image NAME TAG: skopeo copy to the registry, skipped when it has the same digest.
push_image() {
	local name=$1 tag=$2 out=$OCI_CACHE/$1-$2 want have
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

ensure_images() {
	build_image pause 1.0 '["/pause"]' ''
	build_image busybox 1.35 '' '["sh"]'
	push_image pause 1.0
	push_image busybox 1.35
	log "images: $PAUSE_IMAGE, $BUSYBOX_IMAGE"
}
