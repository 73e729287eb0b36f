# shellcheck shell=bash
# The upstream e2e suite against the dev cluster (deploy/dev/conformance): e2e.test, ginkgo and
# agnhost built from the wrapper module deploy/go/e2e (the control plane's k8s.io/kubernetes
# release) into CACHE/bin by version, and the test images the node focus pulls, built with
# images.sh's build_image and pushed under the names test/utils/image/manifest.go gives them.

GINKGO_VERSION=$(go_mod_version e2e github.com/onsi/ginkgo/v2)
E2E_VERSION=$(go_mod_version e2e k8s.io/kubernetes)
# ginkgo runs a precompiled suite only when its file name ends in .test.
E2E_BIN=$BIN/e2e-$E2E_VERSION.test
GINKGO_BIN=$BIN/ginkgo-$GINKGO_VERSION
AGNHOST_BIN=$BIN/agnhost-$E2E_VERSION

# The suite's busybox is upstream busybox (test/images/busybox starts from the busybox image),
# built here from the unpatched upstream tarball that the Debian archive carries: Debian's own
# busybox reverts upstream's ash change that passes environment variables whose names are not
# shell identifiers (data-1, 1-data-1) on to children, which the envFrom specs check. One pinned
# checksum per version; the manifest's tag (1.37.0-1) names the version.
declare -A BUSYBOX_SRC_SHA256=(
	[1.37.0]=3311dff32e746499f4df0d5df04d7eb396382d7e108bb9250e7b519b837043a4
)

# Where KUBE_TEST_REPO_LIST sends each registry of the suite: everything to the local
# registry (no traffic leaves the machine). invalidRegistry names a repository that does not
# exist there, so its pulls fail as the specs expect.
E2E_REGISTRY_PREFIX=$REGISTRY/e2e
E2E_PROMOTER=$E2E_REGISTRY_PREFIX/e2e-test-images
E2E_GC=$E2E_REGISTRY_PREFIX/k8s
E2E_DOCKER_LIBRARY=$E2E_REGISTRY_PREFIX/library

# e2e_go NAME OUT GO_ARGS...: one `go` command in deploy/go/e2e (niced: the suite's builds are
# long and the machine is shared) that writes OUT.tmp, then OUT; logged to LOGS/build-NAME.log.
# The control plane's ldflags make e2e.test report the cluster's version; no cgo, as upstream.
e2e_go() {
	local name=$1 out=$2
	shift 2
	local t0=$SECONDS logf=$LOGS/build-$name.log
	require_go "$name"
	log "building $name (deploy/go/e2e: go $*)"
	mkdir -p "$BIN" "$LOGS"
	printf '==== %s: go %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logf"
	if ! (cd "$GO_DIR/e2e" && env CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-buildvcs=false \
		nice -n 10 go "$@") >>"$logf" 2>&1; then
		show_log_tail "$logf" 40
		die "building $name failed (log: $logf)"
	fi
	mv -f "$out.tmp" "$out"
	log "built $name in $((SECONDS - t0))s"
}

build_e2e_tools() {
	[[ -x $E2E_BIN ]] || e2e_go e2e.test "$E2E_BIN" test -c -vet=off -trimpath \
		-ldflags "$K8S_LDFLAGS" -o "$E2E_BIN.tmp" k8s.io/kubernetes/test/e2e
	[[ -x $GINKGO_BIN ]] || e2e_go ginkgo "$GINKGO_BIN" build -trimpath -ldflags "-s -w" \
		-o "$GINKGO_BIN.tmp" github.com/onsi/ginkgo/v2/ginkgo
	[[ -x $AGNHOST_BIN ]] || e2e_go agnhost "$AGNHOST_BIN" build -trimpath -ldflags "-s -w" \
		-o "$AGNHOST_BIN.tmp" k8s.io/kubernetes/test/images/agnhost
}

# build_suite_busybox: CACHE/bin/busybox-VERSION, a static defconfig build (without tc, which
# no longer builds against current kernel headers) of the busybox release the manifest names.
build_suite_busybox() {
	local version sum src work t0=$SECONDS logf=$LOGS/build-busybox.log
	version=$(manifest_tag BusyBox)
	version=${version%-*}
	E2E_BUSYBOX_BIN=$BIN/busybox-$version
	export E2E_BUSYBOX_BIN
	[[ -x $E2E_BUSYBOX_BIN ]] && return 0
	sum=${BUSYBOX_SRC_SHA256[$version]:-}
	[[ -n $sum ]] || die "no pinned checksum for busybox $version: add it to BUSYBOX_SRC_SHA256 in $(basename "${BASH_SOURCE[0]}")"
	src=$CACHE/src/busybox_$version.orig.tar.bz2
	mkdir -p "$CACHE/src" "$BIN" "$LOGS"
	if [[ ! -s $src ]] || ! sha256sum --quiet -c <<<"$sum  $src" 2>/dev/null; then
		log "downloading busybox $version source from the Debian archive"
		curl -fsS --max-time 300 -o "$src.tmp" \
			"http://deb.debian.org/debian/pool/main/b/busybox/busybox_$version.orig.tar.bz2" ||
			die "cannot download busybox $version source"
		sha256sum --quiet -c <<<"$sum  $src.tmp" || die "busybox $version source: checksum mismatch"
		mv -f "$src.tmp" "$src"
	fi
	log "building busybox $version (upstream source, static)"
	work=$(mktemp -d "$CACHE/src/.busybox.XXXXXX")
	if ! (tar -xjf "$src" -C "$work" --strip-components=1 && cd "$work" &&
		make defconfig && sed -i -e 's/^# CONFIG_STATIC is not set/CONFIG_STATIC=y/' \
		-e 's/^CONFIG_TC=y/# CONFIG_TC is not set/' .config &&
		make oldconfig </dev/null && nice -n 10 make -j"$(nproc)") >"$logf" 2>&1; then
		rm -rf "$work"
		show_log_tail "$logf" 40
		die "building busybox $version failed (log: $logf)"
	fi
	install -m 0755 "$work/busybox" "$E2E_BUSYBOX_BIN"
	rm -rf "$work"
	log "built busybox $version in $((SECONDS - t0))s"
}

# manifest_tag ID: the tag test/utils/image/manifest.go of the pinned module gives image ID
# (e.g. Agnhost -> 2.59), so a version bump of the module moves the images with it.
manifest_tag() {
	local manifest tag
	manifest=$(cd "$GO_DIR/e2e" && GOTOOLCHAIN=local go list -m -f '{{.Dir}}' k8s.io/kubernetes)/test/utils/image/manifest.go
	tag=$(sed -n "s/^[[:space:]]*configs\[$1\] = Config{[^,]*, \"[^\"]*\", \"\([^\"]*\)\"}.*/\1/p" "$manifest")
	[[ -n $tag ]] || die "no tag for $1 in $manifest"
	printf '%s\n' "$tag"
}

# The images of the node focus (manifest.go ID, our image directory, repository, entrypoint,
# cmd, user): agnhost, busybox (upstream's build, applets in /bin, as upstream), pause (USER 65535:65535 as upstream's), nonewprivs and nonroot.
# In the node focus nginx is pulled only by a [Slow] spec, httpd by none.
E2E_IMAGES=(
	"Agnhost agnhost $E2E_PROMOTER/agnhost [\"/agnhost\"] [\"pause\"] -"
	"BusyBox e2e-busybox $E2E_PROMOTER/busybox - [\"sh\"] -"
	"Pause pause $E2E_GC/pause [\"/pause\"] - 65535:65535"
	"Nonewprivs nonewprivs $E2E_PROMOTER/nonewprivs - [\"nnp\"] -"
	"NonRoot nonroot $E2E_PROMOTER/nonroot - [\"sh\"] 1234"
)

# ensure_e2e_images: builds (when their inputs changed) and pushes every image of E2E_IMAGES.
ensure_e2e_images() {
	local entry id dir ref entrypoint cmd user tag repo
	export AGNHOST_BIN
	build_suite_busybox
	for entry in "${E2E_IMAGES[@]}"; do
		read -r id dir ref entrypoint cmd user <<<"$entry"
		tag=$(manifest_tag "$id")
		repo=${ref#"$REGISTRY"/}
		[[ $entrypoint == - ]] && entrypoint=''
		[[ $cmd == - ]] && cmd=''
		[[ $user == - ]] && user=''
		OCI_USER=$user build_image "$dir" "$tag" "$entrypoint" "$cmd" "$repo"
		push_image "$repo" "$tag"
	done
}

# write_repo_list FILE: the KUBE_TEST_REPO_LIST file (keys of manifest.go's RegistryList).
write_repo_list() {
	write_if_changed "$1" "$(
		cat <<EOF
# Written by deploy/dev/conformance: every registry of the e2e suite, remapped to the local one.
promoterE2eRegistry: $E2E_PROMOTER
buildImageRegistry: $E2E_REGISTRY_PREFIX/build-image
gcEtcdRegistry: $E2E_GC
gcRegistry: $E2E_GC
sigStorageRegistry: $E2E_REGISTRY_PREFIX/sig-storage
privateRegistry: $E2E_REGISTRY_PREFIX/k8s-authenticated-test
dockerLibraryRegistry: $E2E_DOCKER_LIBRARY
cloudProviderGcpRegistry: $E2E_REGISTRY_PREFIX/cloud-provider-gcp
invalidRegistry: $E2E_REGISTRY_PREFIX/invalid
EOF
	)"$'\n'
}
