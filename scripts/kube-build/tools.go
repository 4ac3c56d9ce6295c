//go:build tools

// Package tools pins kube-apiserver for the tests' throwaway control plane (scripts/install-tools).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
