// Package growvar grows a node's /var partition to the end of the disk the
// image was written to, at boot, before /var is mounted: an image built at
// a few GiB and written to a 20 GiB cloud volume gets a /var of about
// 19 GiB. The partition is grown by systemd-repart, which also moves the
// backup GPT header to the end of the disk; the filesystem follows when
// it is made (x-systemd.makefs, first boot) or mounted (x-systemd.growfs,
// later boots). Partitions after /var (the config-2 partition that Ironic
// writes into the last 64 MiB) are kept: /var grows into free space only.
// Running it again changes nothing, and no data is touched.
//
// The disk is named explicitly, because systemd-repart cannot find the
// disk behind the node's overlay root by itself: it is the disk holding
// the partition labelled "var" that /etc/fstab mounts, and, when the root
// is named by root=PARTUUID=, it must also hold the root partition.
//
// Standard library only: it runs as "nodebake-firstboot grow-var".
package growvar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/cmdline"
)

// The image's side: the partition, the definition that matches it and
// where it is installed.
const (
	// PartLabel is the GPT partition name of /var; fstab mounts
	// PARTLABEL=var.
	PartLabel = "var"
	// DefinitionsDir holds the repart.d definition. It is not one of
	// systemd-repart's default directories, so that the distribution's
	// systemd-repart.service (which looks for the root's disk itself)
	// does nothing.
	DefinitionsDir = "/usr/lib/nodebake/repart.d"
	// DefinitionFile is the definition's name in DefinitionsDir.
	DefinitionFile = "50-var.conf"
	// Definition matches the existing /var partition by its type (the
	// Discoverable Partitions Specification's var type) and lets it grow
	// without bound; without Format= or CopyFiles= its content is never
	// touched.
	Definition = "# nodebake: /var takes the rest of the disk (nodebake-grow-var.service).\n[Partition]\nType=var\n"
	// Unit is the systemd unit that runs it before /var is mounted
	// (units/nodebake-grow-var.service); /var's fstab line requires it.
	Unit = "nodebake-grow-var.service"
	// Repart is the program that grows it.
	Repart = "/usr/bin/systemd-repart"
	// maxOutput bounds what is kept of systemd-repart's output.
	maxOutput = 64 << 10
)

// Options configure Grow.
type Options struct {
	// Root prefixes /dev, /sys and /proc; "" means "/".
	Root string
	// Run runs a program and returns its combined output; nil runs it
	// with os/exec. Tests replace it.
	Run func(ctx context.Context, name string, args ...string) ([]byte, error)
	// Log receives systemd-repart's output; may be nil.
	Log io.Writer
}

// Result says what Grow did.
type Result struct {
	// Partition and Disk are device names ("vda3", "vda").
	Partition, Disk string
	// Before and After are the partition's sizes in bytes.
	Before, After int64
	// Elapsed is how long it took.
	Elapsed time.Duration
}

// Grown reports whether the partition grew.
func (r Result) Grown() bool { return r.After > r.Before }

// String describes the result in one line.
func (r Result) String() string {
	if !r.Grown() {
		return fmt.Sprintf("/var (%s) already takes the free space of %s: %s, in %s", r.Partition, r.Disk, mib(r.After), r.Elapsed.Round(time.Millisecond))
	}
	return fmt.Sprintf("/var (%s) grown from %s to %s on %s in %s", r.Partition, mib(r.Before), mib(r.After), r.Disk, r.Elapsed.Round(time.Millisecond))
}

func mib(n int64) string { return strconv.FormatInt(n>>20, 10) + " MiB" }

// ErrNoPartition is returned when there is no partition labelled var
// (a network-booted node, say): there is nothing to grow.
var ErrNoPartition = errors.New("no partition labelled " + PartLabel)

// Grow finds the disk of the /var partition and has systemd-repart grow
// the partition into the free space after it.
func Grow(ctx context.Context, opts Options) (Result, error) {
	start := time.Now()
	if opts.Root == "" {
		opts.Root = "/"
	}
	if opts.Run == nil {
		opts.Run = run
	}
	part, disk, err := Find(opts.Root)
	if err != nil {
		return Result{}, err
	}
	res := Result{Partition: part, Disk: disk}
	if res.Before, err = partSize(opts.Root, part); err != nil {
		return res, err
	}
	out, err := opts.Run(ctx, Repart, "--dry-run=no", "--no-pager", "--discard=no",
		"--definitions="+DefinitionsDir, "/dev/"+disk)
	if opts.Log != nil && len(out) > 0 {
		opts.Log.Write(out)
	}
	if err != nil {
		return res, fmt.Errorf("%s /dev/%s: %w: %s", path.Base(Repart), disk, err, lastLine(out))
	}
	if res.After, err = partSize(opts.Root, part); err != nil {
		return res, err
	}
	if res.After < res.Before {
		return res, fmt.Errorf("/dev/%s shrank from %d to %d bytes", part, res.Before, res.After)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// Find returns the /var partition fstab mounts (/dev/disk/by-partlabel/var)
// and the whole disk it is on, as device names. When the kernel command
// line names the root by root=PARTUUID=, the root partition must be on the
// same disk: a /var on another disk is not the image's own.
func Find(root string) (part, disk string, err error) {
	part, err = linkTarget(root, "/dev/disk/by-partlabel/"+PartLabel)
	if errors.Is(err, os.ErrNotExist) {
		return "", "", ErrNoPartition
	}
	if err != nil {
		return "", "", err
	}
	if disk, err = diskOf(root, part); err != nil {
		return "", "", err
	}
	params, err := cmdline.Read(root)
	if err != nil {
		return "", "", err
	}
	if v, ok := params.Get("root"); ok {
		if uuid, ok := strings.CutPrefix(v, "PARTUUID="); ok {
			rootPart, err := linkTarget(root, "/dev/disk/by-partuuid/"+strings.ToLower(uuid))
			if err != nil {
				return "", "", fmt.Errorf("the root partition (root=%s): %w", v, err)
			}
			rootDisk, err := diskOf(root, rootPart)
			if err != nil {
				return "", "", err
			}
			if rootDisk != disk {
				return "", "", fmt.Errorf("/var's partition %s is on %s, the root partition %s on %s: not growing a disk the node did not boot from", part, disk, rootPart, rootDisk)
			}
		}
	}
	return part, disk, nil
}

// linkTarget resolves a udev link under /dev to the device name it points
// to ("vda3").
func linkTarget(root, link string) (string, error) {
	target, err := filepath.EvalSymlinks(filepath.Join(root, link))
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w", link, err)
	}
	dev := filepath.Join(root, "dev")
	rel, err := filepath.Rel(dev, target)
	if err != nil || rel == "." || strings.Contains(rel, "/") || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("%s points to %s, not a device in /dev", link, target)
	}
	return rel, nil
}

// diskOf returns the whole disk a partition belongs to: its parent in
// /sys/class/block's device tree ("vda" for "vda3", "nvme0n1" for
// "nvme0n1p3").
func diskOf(root, part string) (string, error) {
	sys := filepath.Join(root, "sys", "class", "block", part)
	if _, err := os.Stat(filepath.Join(sys, "partition")); err != nil {
		return "", fmt.Errorf("/dev/%s is not a partition: %w", part, err)
	}
	real, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return "", fmt.Errorf("finding the disk of /dev/%s: %w", part, err)
	}
	disk := filepath.Base(filepath.Dir(real))
	if _, err := os.Stat(filepath.Join(root, "sys", "class", "block", disk)); err != nil || disk == part {
		return "", fmt.Errorf("finding the disk of /dev/%s: %s is not a block device", part, disk)
	}
	return disk, nil
}

// partSize reads a block device's size in bytes from sysfs (512-byte
// sectors, whatever the device's own sector size).
func partSize(root, name string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, "sys", "class", "block", name, "size"))
	if err != nil {
		return 0, fmt.Errorf("reading the size of /dev/%s: %w", name, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || n < 0 || n > 1<<54 {
		return 0, fmt.Errorf("the size of /dev/%s: %q is not a sector count", name, bytes.TrimSpace(b))
	}
	return n * 512, nil
}

// run runs a program and returns its combined output, at most maxOutput
// bytes of it.
func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	var out limitedBuffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.b.Bytes(), err
}

type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxOutput - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// lastLine is the last non-empty line of a program's output.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
