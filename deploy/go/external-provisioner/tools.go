//go:build tools

// Package tools only anchors the wrapper module.
package tools

import _ "github.com/kubernetes-csi/external-provisioner/v6/cmd/csi-provisioner"
