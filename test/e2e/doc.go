// Package e2e holds nodebake's end-to-end acceptance test: from the seed's
// Ansible setup to a running cluster. `nodebake import ansible` turns the
// seed's group_vars and an inventory of three workers into the spec and a
// node config per worker; a real control plane runs on the host's
// loopback; the workers boot under QEMU from the image built from that
// spec, each completed at first boot by its node config, join the cluster
// and run pods that talk across WireGuard.
//
// It is the slowest test of the repository: it runs only with
// NODEBAKE_SLOW=1 and NODEBAKE_E2E=1, and needs QEMU, OVMF and the base OS
// layout (scripts/build-base.sh). Its fast parts (the inventory it writes,
// the import it makes) run in every `go test`.
package e2e
