// Package cis holds the slow test that boots a worker from the default
// spec with its node config and runs kube-bench's worker node checks (the
// CIS Kubernetes Benchmark for the spec's Kubernetes version) inside it,
// along with our own checks of the controls kube-bench cannot see.
package cis
