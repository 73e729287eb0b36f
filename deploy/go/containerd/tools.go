//go:build tools

// Package tools only anchors the wrapper module.
package tools
