# shellcheck shell=bash
# The private dockerd of deploy/kind: Debian's docker.io, unpacked (not installed: no service
# is registered or started on the host) into CACHE/docker/VERSION, running with its own data
# root, exec root and socket. It touches no host firewall or routing: --iptables=false,
# --ip-forward=false, --ip-masq=false and no default bridge; published ports go through
# docker-proxy on 127.0.0.1. The kind network is a bridge of the project's (mkl-kind, a
# private /24) whose nodes get no default route (the node image's entrypoint removes it).

DOCKER_DEB=docker.io
DOCKER_SOCK=$RUN/docker.sock
DOCKER_HOST_URL=unix://$DOCKER_SOCK
KIND_NETWORK=kind
KIND_BRIDGE=mkl-kind
KIND_SUBNET=10.251.0.0/24
KIND_GATEWAY=10.251.0.1
RUNC_WRAPPER=$KIND_DIR/runc-without-sys-resource

# docker_version: the candidate version of Debian's docker.io (the cache key of the unpacked
# package).
docker_version() {
	apt-cache policy "$DOCKER_DEB" 2>/dev/null | awk '$1 == "Candidate:" { print $2; exit }'
}

# docker_dir: where that version is unpacked (empty when apt knows no docker.io).
docker_dir() {
	local v
	v=$(docker_version)
	[[ -n $v && $v != "(none)" ]] || return 1
	printf '%s/docker/%s\n' "$CACHE" "${v//[^A-Za-z0-9.+~-]/_}"
}

# ensure_docker: docker.io downloaded and unpacked once per version, with the packages its
# binaries link against or run (containerd, runc, libdevmapper) installed.
ensure_docker() {
	local dir tmp deb
	install_missing "containerd containerd" "runc runc" \
		"/usr/lib/x86_64-linux-gnu/libdevmapper.so.1.02.1 libdevmapper1.02.1"
	if ! dir=$(docker_dir); then
		apt-get update >>"$LOGS/apt.log" 2>&1 || die "apt-get update failed (log: $LOGS/apt.log)"
		dir=$(docker_dir) || die "apt knows no $DOCKER_DEB package"
	fi
	[[ -x $dir/usr/sbin/dockerd ]] && return 0
	log "unpacking Debian's $DOCKER_DEB $(docker_version) into $dir"
	mkdir -p "$CACHE/docker"
	tmp=$(mktemp -d "$CACHE/docker/.download.XXXXXX")
	if ! (cd "$tmp" && apt-get download "$DOCKER_DEB=$(docker_version)") >>"$LOGS/apt.log" 2>&1; then
		rm -rf "$tmp"
		die "apt-get download $DOCKER_DEB failed (log: $LOGS/apt.log)"
	fi
	deb=$(find "$tmp" -maxdepth 1 -name '*.deb' -print -quit)
	mkdir "$tmp/root"
	dpkg-deb -x "$deb" "$tmp/root"
	rm -rf "$dir"
	mv "$tmp/root" "$dir"
	rm -rf "$tmp"
}

docker_bin_dir() { printf '%s/usr/bin\n' "$(docker_dir)"; }
docker_() { DOCKER_HOST=$DOCKER_HOST_URL "$(docker_bin_dir)/docker" "$@"; }

# lacks_sys_resource: true when this machine's capability bounding set has no
# CAP_SYS_RESOURCE (bit 24), so that runc must drop it from a privileged container's config.
lacks_sys_resource() {
	local bnd
	bnd=$(awk '$1 == "CapBnd:" { print $2 }' /proc/self/status)
	(((0x$bnd >> 24 & 1) == 0))
}

# dockerd_cmd: CMD becomes the private dockerd's command line.
dockerd_cmd() {
	local dir
	dir=$(docker_dir)
	CMD=("$dir/usr/sbin/dockerd"
		--data-root "$STATE/docker" --exec-root "$RUN/docker" --pidfile "$RUN/docker.pid"
		--host "$DOCKER_HOST_URL" --config-file "$STATE/daemon.json"
		--iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none
		--userland-proxy-path "$dir/usr/sbin/docker-proxy"
		--default-cgroupns-mode private --log-level warn)
	if lacks_sys_resource; then
		CMD+=(--add-runtime "mkl-runc=$RUNC_WRAPPER" --default-runtime mkl-runc)
	fi
}

docker_healthy() { docker_ version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
	local -a CMD
	ensure_docker
	if component_pid dockerd >/dev/null && docker_healthy; then
		return 0
	fi
	mkdir -p "$STATE/docker" "$RUN/docker"
	write_if_changed "$STATE/daemon.json" '{}'$'\n'
	dockerd_cmd
	if lacks_sys_resource; then
		log "this machine lacks CAP_SYS_RESOURCE: dockerd's runtime is $RUNC_WRAPPER"
	fi
	log "starting the private dockerd ($DOCKER_HOST_URL)"
	start_bg dockerd "${CMD[@]}"
	wait_healthy dockerd 60 docker_healthy
}

# ensure_kind_network: the kind network made before kind would make its own (kind uses an
# existing network of that name): IPv4 only, on the project's bridge, no masquerade.
ensure_kind_network() {
	if docker_ network inspect "$KIND_NETWORK" >/dev/null 2>&1; then
		return 0
	fi
	log "creating docker network $KIND_NETWORK ($KIND_SUBNET on bridge $KIND_BRIDGE)"
	docker_ network create --driver bridge --subnet "$KIND_SUBNET" --gateway "$KIND_GATEWAY" \
		-o "com.docker.network.bridge.name=$KIND_BRIDGE" \
		-o com.docker.network.bridge.enable_ip_masquerade=false \
		"$KIND_NETWORK" >/dev/null
}

# stop_dockerd: every container of this dockerd removed, the kind network removed, dockerd
# stopped by its pid (its containerd and shims end with it), its mounts gone.
stop_dockerd() {
	local -a ids
	if component_pid dockerd >/dev/null && docker_healthy; then
		mapfile -t ids < <(docker_ ps -aq)
		((${#ids[@]} == 0)) || docker_ rm -f -v "${ids[@]}" >/dev/null
		docker_ network rm "$KIND_NETWORK" >/dev/null 2>&1 || true
		docker_ volume prune -f >/dev/null 2>&1 || true
	fi
	stop_component dockerd 60
	wait_reaped
	ip link delete "$KIND_BRIDGE" 2>/dev/null || true
}
