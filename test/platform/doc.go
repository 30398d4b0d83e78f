// Package platform holds the real-world counterparts of the first-boot
// platform readers' unit tests: each reader against the real program that
// plays its service, where one can be had (for EC2, AWS's
// amazon-ec2-metadata-mock built from the Go module proxy). The tests are
// slow (they build the program once) and run with NODEBAKE_SLOW=1.
package platform
