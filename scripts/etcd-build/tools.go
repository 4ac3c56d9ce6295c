//go:build tools

// Package tools pins etcd for the tests' throwaway control plane: the server module's root package is
// the etcd binary's main (it calls etcdmain.Main), so `go build go.etcd.io/etcd/server/v3` builds it.
package tools

import _ "go.etcd.io/etcd/server/v3"
