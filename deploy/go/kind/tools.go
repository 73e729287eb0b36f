//go:build tools

// Package tools only anchors the wrapper module.
package tools

import _ "sigs.k8s.io/kind"
