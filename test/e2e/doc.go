// Package e2e holds nodebake's end-to-end acceptance tests: a real control
// plane on the host's loopback, workers booted under QEMU from an image
// built by the real pipeline, each completed at first boot by its own node
// config, joining the cluster.
//
// TestCluster, the slowest test of the repository, goes from the seed's
// Ansible setup to a running cluster: `nodebake import ansible` turns the
// seed's group_vars and an inventory of three workers into the spec and a
// node config per worker; the workers boot from the image built from that
// spec, join the cluster and run pods that talk across WireGuard. It runs
// only with NODEBAKE_SLOW=1 and NODEBAKE_E2E=1; its fast parts (the
// inventory it writes, the import it makes) run in every `go test`.
// TestClock boots workers whose clock is a year behind in network labs
// (test/netlab), with and without a time source; it runs with
// NODEBAKE_SLOW=1 (as root, for the labs). TestPlatformJoin boots two
// workers that get their node configs only from their platform (EC2's
// instance metadata service in a lab, an OpenStack config-2 drive) and
// join the cluster; it runs like TestCluster, as root. All need QEMU,
// OVMF and the base OS layout (scripts/build-base.sh).
package e2e
