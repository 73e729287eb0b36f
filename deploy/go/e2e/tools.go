//go:build tools

// Package tools anchors the wrapper module's dependencies: the binaries are built with
// `go test -c k8s.io/kubernetes/test/e2e` and `go build` of ginkgo and agnhost.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
