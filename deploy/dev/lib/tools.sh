# shellcheck shell=bash
# Test tools built from Go modules into CACHE/bin by version, linked into CACHE/bin/current:
# promcheck parses the agent's /metrics with Prometheus' reference parser (expfmt).

PROMCHECK_VERSION=$(go_mod_version promcheck github.com/prometheus/common)

build_test_tools() {
	local out=$BIN/promcheck-$PROMCHECK_VERSION
	if [[ ! -x $out ]]; then
		require_go promcheck
		log "building promcheck (prometheus/common $PROMCHECK_VERSION)"
		mkdir -p "$BIN"
		go_build promcheck promcheck -trimpath -ldflags "-s -w" -o "$out.tmp" .
		mv -f "$out.tmp" "$out"
	fi
	mkdir -p "$BIN/current"
	[[ $(readlink "$BIN/current/promcheck" 2>/dev/null) == "../promcheck-$PROMCHECK_VERSION" ]] ||
		ln -sfn "../promcheck-$PROMCHECK_VERSION" "$BIN/current/promcheck"
}
