//go:build tools

// Package tools only anchors the wrapper module.
package tools

import _ "github.com/flannel-io/flannel"
