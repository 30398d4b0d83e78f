// Package boot holds nodebake's acceptance tests: the worker image built
// from source through a local release mirror, checked with independent
// tools, booted under QEMU with a probe, and built twice to prove it
// reproducible. They run with NODEBAKE_SLOW=1.
package boot
