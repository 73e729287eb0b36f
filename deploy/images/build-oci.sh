#!/usr/bin/env bash
# build-oci.sh ROOTFS_DIR NAME:TAG [ENTRYPOINT_JSON [CMD_JSON]]
#
# Packs ROOTFS_DIR into a single-layer OCI image layout with tar, gzip and sha256sum only (no
# image builder, no daemon). The layer is a deterministic tar (sorted names, mtime 0,
# uid/gid 0) compressed with `gzip -n`, so the same rootfs always gives the same digests.
# (Registries store gzip layers: skopeo would compress an uncompressed layer on push and so
# change the manifest digest; with OCI_COMPRESS=none the layer stays a plain tar.)
#
#   ENTRYPOINT_JSON  JSON array, e.g. '["/pause"]'             (default: none)
#   CMD_JSON         JSON array, e.g. '["sh"]'                 (default: none)
#   OCI_ENV          JSON array of KEY=VALUE strings           (default: a standard PATH)
#   OCI_USER         the config's User, e.g. 1234 or 65535:65535 (default: none, root)
#   OCI_OUT          output layout directory (replaced)        (default: $MKL_CACHE_DIR/oci/NAME-TAG)
#   OCI_COMPRESS     gzip or none                              (default: gzip)
#
# Prints the layout directory; push it with
#   skopeo copy --dest-tls-verify=false oci:DIR:TAG docker://REGISTRY/NAME:TAG
set -euo pipefail
export LC_ALL=C

usage() {
	sed -n '2,18s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	exit 2
}

[[ $# -ge 2 && $# -le 4 ]] || usage
rootfs=$1 ref=$2 entrypoint=${3:-} cmd=${4:-}
[[ -d $rootfs ]] || {
	echo "build-oci.sh: $rootfs is not a directory" >&2
	exit 2
}
[[ $ref == *:* && $ref != *:*/* ]] || {
	echo "build-oci.sh: image reference must be NAME:TAG, got '$ref'" >&2
	exit 2
}
name=${ref%:*} tag=${ref##*:}
env_json=${OCI_ENV:-'["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]'}
out=${OCI_OUT:-${MKL_CACHE_DIR:-/var/cache/minikubelet}/oci/${name//\//_}-$tag}

for json in "$entrypoint" "$cmd" "$env_json"; do
	case $json in
	'' | \[*\]) ;;
	*)
		echo "build-oci.sh: expected a JSON array, got '$json'" >&2
		exit 2
		;;
	esac
done

case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) arch=$(uname -m) ;;
esac

blobs=$out/blobs/sha256
rm -rf "$out"
mkdir -p "$blobs"

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { wc -c <"$1" | tr -d ' '; }

# add_blob FILE: moves FILE into blobs/sha256/<digest> and prints the digest.
add_blob() {
	local digest
	digest=$(sha256_of "$1")
	mv -f "$1" "$blobs/$digest"
	printf '%s\n' "$digest"
}

# 1. the layer: a deterministic tar of the rootfs (top-level entries in C order, recursion
#    sorted by --sort=name).
shopt -s dotglob nullglob
entries=()
for entry in "$rootfs"/*; do entries+=("${entry#"$rootfs"/}"); done
shopt -u dotglob nullglob
[[ ${#entries[@]} -gt 0 ]] || {
	echo "build-oci.sh: $rootfs is empty" >&2
	exit 2
}
tar -C "$rootfs" --format=gnu --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner \
	-cf "$out/layer.tar" -- "${entries[@]}"
diff_id=$(sha256_of "$out/layer.tar")
case ${OCI_COMPRESS:-gzip} in
gzip)
	gzip -n -9 "$out/layer.tar"
	layer_file=$out/layer.tar.gz layer_type=application/vnd.oci.image.layer.v1.tar+gzip
	;;
none) layer_file=$out/layer.tar layer_type=application/vnd.oci.image.layer.v1.tar ;;
*)
	echo "build-oci.sh: OCI_COMPRESS must be gzip or none" >&2
	exit 2
	;;
esac
layer_size=$(size_of "$layer_file")
layer_digest=$(add_blob "$layer_file")

# 2. the image config.
config_fields="\"Env\":$env_json"
[[ -z $entrypoint ]] || config_fields+=",\"Entrypoint\":$entrypoint"
[[ -z $cmd ]] || config_fields+=",\"Cmd\":$cmd"
[[ -z ${OCI_USER:-} ]] || config_fields+=",\"User\":\"$OCI_USER\""
config_fields+=',"WorkingDir":"/"'
printf '{"architecture":"%s","os":"linux","config":{%s},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"deploy/images/build-oci.sh %s"}]}' \
	"$arch" "$config_fields" "$diff_id" "$ref" >"$out/config.json"
config_size=$(size_of "$out/config.json")
config_digest=$(add_blob "$out/config.json")

# 3. the manifest.
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"%s","digest":"sha256:%s","size":%s}]}' \
	"$config_digest" "$config_size" "$layer_type" "$layer_digest" "$layer_size" >"$out/manifest.json"
manifest_size=$(size_of "$out/manifest.json")
manifest_digest=$(add_blob "$out/manifest.json")

# 4. index.json and oci-layout.
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}\n' \
	"$manifest_digest" "$manifest_size" "$tag" >"$out/index.json"
printf '{"imageLayoutVersion":"1.0.0"}\n' >"$out/oci-layout"

printf '%s\n' "$out"
