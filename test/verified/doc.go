// Package verified holds the real-world tests of the verified boot chain:
// the worker image built by the pipeline, turned into a verified disk by
// builder/disk (a dm-verity root in slot A, an empty slot B, a boot-counted
// UKI on the ESP, systemd-boot, optionally signed for Secure Boot), booted
// under QEMU. They prove that the root comes up as /dev/mapper/root, that
// one flipped byte in a root file stops the boot with a verity error before
// kubelet can start, and that under enforced Secure Boot the firmware runs
// only images signed with the enrolled key.
//
// The base must carry the initrd's verity script (images/base/hooks). Until
// the shared base is rebuilt from that recipe, point the tests at one built
// aside: NODEBAKE_BASE_LAYOUT=build/base-verity/trixie-amd64 after
// scripts/build-base.sh --out build/base-verity. They run with
// NODEBAKE_SLOW=1; boot one guest at a time.
package verified
