// Package e2e holds nodebake's end-to-end acceptance test: a real control
// plane on the host's loopback, workers booted under QEMU from one image
// built by the real pipeline, each completed at first boot by its own node
// config, joining the cluster and running pods that talk across WireGuard.
//
// It is the slowest test of the repository: it runs only with
// NODEBAKE_SLOW=1 and NODEBAKE_E2E=1, and needs QEMU, OVMF and the base OS
// layout (scripts/build-base.sh).
package e2e
