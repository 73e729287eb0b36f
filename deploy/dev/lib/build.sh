# shellcheck shell=bash
# Host packages and the Go-built binaries (etcd, kube-*, kubectl, crictl) in CACHE/bin.
# Versions come from the wrapper modules under deploy/go, so bumping a go.mod is the only
# change needed to build a new release.

GO_DIR=$DEPLOY_DIR/go

# go_mod_version DIR MODULE: the version of MODULE required by DIR/go.mod.
go_mod_version() {
	local v
	v=$(awk -v m="$2" '($1 == m) { print $2; exit } ($1 == "require" && $2 == m) { print $3; exit }' "$GO_DIR/$1/go.mod")
	[[ -n $v ]] || die "cannot find $2 in $GO_DIR/$1/go.mod"
	printf '%s\n' "$v"
}

K8S_VERSION=$(go_mod_version kubernetes k8s.io/kubernetes)
ETCD_VERSION=$(go_mod_version etcd go.etcd.io/etcd/server/v3)
CRICTL_VERSION=$(go_mod_version cri-tools sigs.k8s.io/cri-tools)
K8S_MINOR=${K8S_VERSION#v*.}
K8S_MINOR=${K8S_MINOR%%.*}
K8S_MAJOR=${K8S_VERSION#v}
K8S_MAJOR=${K8S_MAJOR%%.*}

# The exact ldflags of the lead's warm-up build, so its GOCACHE entries are reused.
K8S_LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=$K8S_MAJOR -X k8s.io/component-base/version.gitMinor=$K8S_MINOR -X k8s.io/component-base/version.gitTreeState=clean -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=$K8S_MAJOR -X k8s.io/client-go/pkg/version.gitMinor=$K8S_MINOR"
K8S_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubeadm kube-proxy)
# CoreDNS at the release kubeadm deploys.
COREDNS_VERSION=$(go_mod_version coredns github.com/coredns/coredns)
# The dev cluster's runtime: containerd 2 and runc, built (Debian's containerd 1.6 and runc
# stay installed: the 1.6 lane's containerd-1.6 and the kind node image use them).
CONTAINERD_VERSION=$(go_mod_version containerd github.com/containerd/containerd/v2)
RUNC_VERSION=$(go_mod_version runc github.com/opencontainers/runc)

version_of() {
	case $1 in
	etcd) printf '%s\n' "$ETCD_VERSION" ;;
	crictl) printf '%s\n' "$CRICTL_VERSION" ;;
	metrics-server) printf '%s\n' "$(go_mod_version metrics-server sigs.k8s.io/metrics-server)" ;;
	coredns) printf '%s\n' "$COREDNS_VERSION" ;;
	containerd) printf '%s\n' "$CONTAINERD_VERSION" ;; # a directory: containerd and its shim
	runc) printf '%s\n' "$RUNC_VERSION" ;;
	kind) go_mod_version kind sigs.k8s.io/kind ;;            # deploy/kind
	flanneld) go_mod_version flannel github.com/flannel-io/flannel ;; # deploy/kind
	kube-apiserver | kube-controller-manager | kube-scheduler | kubectl | kubeadm | kube-proxy | kubelet) printf '%s\n' "$K8S_VERSION" ;;
	*) die "no version for $1" ;;
	esac
}

bin_path() { printf '%s/%s-%s\n' "$BIN" "$1" "$(version_of "$1")"; }

# Host packages: "command-or-path package" pairs; anything missing is installed with one
# `apt-get update` first.
HOST_PACKAGES=(
	"containerd containerd"
	"runc runc"
	"docker-registry docker-registry"
	"htpasswd apache2-utils"
	"skopeo skopeo"
	"/usr/lib/cni/bridge containernetworking-plugins"
	"protoc protobuf-compiler"
	"/bin/busybox busybox-static"
	"ip iproute2"
	"iptables iptables"
	"jq jq"
	"openssl openssl"
	"curl curl"
	"gcc gcc"
	"/usr/lib/x86_64-linux-gnu/libc.a libc6-dev"
	"setsid util-linux"
	"tar tar"
	"gzip gzip"
	# runc's seccomp support (cgo; linked statically) and the pkg-config its build runs
	"/usr/lib/x86_64-linux-gnu/libseccomp.a libseccomp-dev"
	"pkg-config pkg-config"
	# agent/tests/cluster/shutdown.rs: the private bus its logind stand-in is served on
	"dbus-daemon dbus-daemon"
)

# Lint tools of `deploy/dev/test` (both modes); installed by `up` too and alone by the
# `lint-tools` verb, so the quick lane needs no cluster.
LINT_PACKAGES=(
	"shellcheck shellcheck"
)

have_dependency() {
	local what=$1 pkg=$2
	if [[ $pkg == busybox-static ]]; then
		# /bin/busybox may come from the dynamic `busybox` package; we need the static one.
		dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'
	elif [[ $what == /* ]]; then
		[[ -e $what ]]
	else
		command -v "$what" >/dev/null 2>&1
	fi
}

# install_missing ENTRY...: installs the package of every "command-or-path package" entry
# whose command or path is missing, with one `apt-get update` first.
install_missing() {
	local entry missing=()
	for entry in "$@"; do
		# shellcheck disable=SC2086 # split "what package"
		have_dependency ${entry} || missing+=("${entry#* }")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	log "installing packages: ${missing[*]}"
	mkdir -p "$LOGS"
	{
		apt-get update &&
			DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
	} >>"$LOGS/apt.log" 2>&1 || {
		show_log_tail "$LOGS/apt.log"
		die "apt-get install failed (log: $LOGS/apt.log)"
	}
}

ensure_packages() { install_missing "${HOST_PACKAGES[@]}" "${LINT_PACKAGES[@]}"; }
ensure_lint_packages() { install_missing "${LINT_PACKAGES[@]}"; }

require_go() {
	command -v go >/dev/null 2>&1 || die "go is not on PATH (needed to build ${*}); install Go >= the go line of deploy/go/*/go.mod"
}

# go_build MODULE_DIR LOGNAME ARGS...: `go build` inside a wrapper module.
go_build() {
	local dir=$1 logname=$2
	shift 2
	local logf=$LOGS/build-$logname.log
	mkdir -p "$LOGS"
	printf '==== %s: go build %s\n' "$(date -u +%FT%TZ)" "$*" >>"$logf"
	if ! (cd "$GO_DIR/$dir" && env GOTOOLCHAIN=local GOFLAGS=-buildvcs=false go build "$@") >>"$logf" 2>&1; then
		show_log_tail "$logf" 40
		die "building $logname failed (log: $logf)"
	fi
}

build_kubernetes() {
	local name missing=() tmp
	for name in "${K8S_BINARIES[@]}"; do
		[[ -x $(bin_path "$name") ]] || missing+=("$name")
	done
	((${#missing[@]} > 0)) || return 0
	require_go "${missing[*]}"
	log "building kubernetes $K8S_VERSION: ${missing[*]} (first build takes a long while)"
	mkdir -p "$BIN"
	tmp=$(mktemp -d "$BIN/.build-kubernetes.XXXXXX")
	go_build kubernetes kubernetes -trimpath -ldflags "$K8S_LDFLAGS" -o "$tmp/" \
		"${missing[@]/#/k8s.io/kubernetes/cmd/}"
	for name in "${missing[@]}"; do
		mv -f "$tmp/$name" "$(bin_path "$name")"
	done
	rm -rf "$tmp"
}

# build_pinned NAME DIR PACKAGE [GO_BUILD_ARG...]: NAME at its pinned version, built from the
# wrapper module DIR into bin_path NAME unless it is there.
build_pinned() {
	local name=$1 dir=$2 pkg=$3 out
	shift 3
	out=$(bin_path "$name")
	[[ -x $out ]] && return 0
	require_go "$name"
	log "building $name $(version_of "$name")"
	mkdir -p "$BIN"
	go_build "$dir" "$name" -trimpath "$@" -o "$out.tmp" "$pkg"
	mv -f "$out.tmp" "$out"
}

build_etcd() { build_pinned etcd etcd go.etcd.io/etcd/server/v3 -ldflags "-s -w"; }

# Some of cri-tools' dependencies are missing from the checksum database; go.sum is committed.
build_crictl() {
	GOSUMDB=off build_pinned crictl cri-tools sigs.k8s.io/cri-tools/cmd/crictl \
		-ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
}

# build_coredns: CoreDNS, static (CGO_ENABLED=0, as its release images are), for the kubeadm
# cluster's coredns image (built on demand by lib/kubeadm.sh).
build_coredns() { CGO_ENABLED=0 build_pinned coredns coredns github.com/coredns/coredns -ldflags "-s -w"; }

# build_containerd: containerd 2's daemon and its runc v2 shim, into the directory
# bin_path containerd (the shim keeps the name containerd looks up; every containerd config
# names it by its absolute path, so the Debian one on PATH is never taken). Static
# (CGO_ENABLED=0, as containerd's release builds), without the btrfs, devmapper and zfs
# snapshotters the dev cluster never uses.
build_containerd() {
	local out tmp
	out=$(bin_path containerd)
	[[ -x $out/containerd && -x $out/containerd-shim-runc-v2 ]] && return 0
	require_go containerd
	log "building containerd $CONTAINERD_VERSION"
	mkdir -p "$BIN"
	tmp=$(mktemp -d "$BIN/.build-containerd.XXXXXX")
	CGO_ENABLED=0 go_build containerd containerd -trimpath \
		-tags "no_btrfs no_devmapper no_zfs urfave_cli_no_docs" \
		-ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
		-o "$tmp/" github.com/containerd/containerd/v2/cmd/containerd \
		github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2
	rm -rf "$out"
	mv -f "$tmp" "$out"
	chmod 755 "$out"
}

# build_runc: runc with seccomp (cgo, libseccomp), a static PIE as runc's release builds, so
# the shim can run it inside any node's mount namespace.
build_runc() {
	CGO_ENABLED=1 build_pinned runc runc github.com/opencontainers/runc -buildmode=pie \
		-tags "seccomp urfave_cli_no_docs netgo osusergo" \
		-ldflags "-s -w -linkmode external -extldflags -static-pie"
}

# build_kubelet: the real kubelet, for the comparison node of the kubeadm cluster
# (`cluster kubeadm-join-kubelet`; built on demand, not by `up`).
build_kubelet() { build_pinned kubelet kubernetes k8s.io/kubernetes/cmd/kubelet -ldflags "$K8S_LDFLAGS"; }

# link_current: CACHE/bin/current/NAME -> ../NAME-VERSION for every built binary.
link_current() {
	local name target
	mkdir -p "$BIN/current"
	for name in etcd crictl "${K8S_BINARIES[@]}"; do
		target=../$name-$(version_of "$name")
		[[ $(readlink "$BIN/current/$name" 2>/dev/null) == "$target" ]] && continue
		ln -sfn "$target" "$BIN/current/$name"
	done
}

ensure_binaries() {
	build_kubernetes
	build_etcd
	build_crictl
	build_containerd
	build_runc
	link_current
}
