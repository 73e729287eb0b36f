//go:build tools

// Package tools only anchors the wrapper module; the binaries are built with `go build k8s.io/kubernetes/cmd/...`.
package tools
