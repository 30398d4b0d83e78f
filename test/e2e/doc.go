// Package e2e holds nodebake's end-to-end acceptance tests: a real control
// plane on the host's loopback, workers booted under QEMU from an image
// built by the real pipeline, each completed at first boot by its own node
// config, joining the cluster.
//
// TestCluster, the slowest test of the repository, boots three workers
// whose pods talk across WireGuard; it runs only with NODEBAKE_SLOW=1 and
// NODEBAKE_E2E=1. TestClock boots workers whose clock is a year behind in
// network labs (test/netlab), with and without a time source; it runs with
// NODEBAKE_SLOW=1 (as root, for the labs). Both need QEMU, OVMF and the
// base OS layout (scripts/build-base.sh).
package e2e
