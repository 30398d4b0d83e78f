// Package verified holds the real-world tests of verified boot: the worker
// spec with output.verifiedBoot, built by `nodebake build` (unsigned, and
// signed with --signing-key and --signing-cert), booted under QEMU. They
// prove that the root comes up as /dev/mapper/root from slot A, checked by
// dm-verity against the root hash in the UKI; that one flipped byte in a
// root file stops the boot with a verity error before kubelet can start;
// and that under enforced Secure Boot the firmware runs only images signed
// with the enrolled key. The A/B update and rollback with a real cluster
// is test/e2e's TestVerifiedUpdate.
//
// They run with NODEBAKE_SLOW=1 and boot one guest at a time
// ($NODEBAKE_QEMU_LOCK).
package verified
