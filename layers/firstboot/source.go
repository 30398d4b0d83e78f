package firstboot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/blockdev"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// drivePoll is how often FindByLabel runs while waiting for a config drive.
const drivePoll = 100 * time.Millisecond

// maxCmdline bounds the kernel command line read (the kernel's own limit
// is at most 4096 bytes on every architecture; this leaves room).
const maxCmdline = 64 << 10

// findConfig returns the node config from the first source found, in
// order: the kernel command line, a systemd credential, a config drive.
func findConfig(ctx context.Context, opts Options) ([]byte, string, error) {
	root := opts.Root
	cmdline, err := nodeconfig.ReadRegularFile(filepath.Join(root, "proc", "cmdline"), maxCmdline)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("reading the kernel command line /proc/cmdline: %w", err)
	}
	if p, ok := cmdlineParam(string(cmdline), CmdlineParam); ok {
		src := "kernel-cmdline " + p
		if !path.IsAbs(p) {
			return nil, "", fmt.Errorf("%s: %s= must be an absolute path", src, CmdlineParam)
		}
		data, err := nodeconfig.ReadFile(filepath.Join(root, p))
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", src, err)
		}
		return data, src, nil
	}

	dirs := []string{SystemCredentialsDir}
	if opts.CredentialsDir != "" && path.Clean(opts.CredentialsDir) != SystemCredentialsDir {
		dirs = []string{opts.CredentialsDir, SystemCredentialsDir}
	}
	for _, d := range dirs {
		p := path.Join(d, CredentialName)
		data, err := nodeconfig.ReadFile(filepath.Join(root, p))
		if err == nil {
			return data, "credential " + p, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("credential %s: %w", p, err)
		}
	}

	for waited := time.Duration(0); ; waited += drivePoll {
		devs, err := blockdev.FindByLabel(root, DriveLabel)
		if err != nil {
			return nil, "", errorAt("looking for a config drive in", "/sys/class/block", err)
		}
		if len(devs) > 0 {
			d := devs[0]
			src := "config-drive " + d.Path
			data, err := readDrive(root, d)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", src, err)
			}
			return data, src, nil
		}
		if waited >= opts.DriveWait {
			break
		}
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(drivePoll):
		}
	}
	return nil, "", fmt.Errorf("no node config found: no %s= on the kernel command line, no %s credential, no block device labelled %s",
		CmdlineParam, CredentialName, DriveLabel)
}

// cmdlineParam returns the value of name=value on a kernel command line;
// values may be double-quoted.
func cmdlineParam(cmdline, name string) (string, bool) {
	var fields []string
	var cur strings.Builder
	quoted, in := false, false
	for _, r := range cmdline {
		switch {
		case r == '"':
			quoted, in = !quoted, true
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if in {
				fields = append(fields, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		fields = append(fields, cur.String())
	}
	value, found := "", false
	for _, f := range fields {
		if f == "--" {
			break // the rest is for init
		}
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			value, found = v, true // the last one wins, as in the kernel
		}
	}
	return value, found
}

// readDrive mounts a config drive read-only on a temporary directory,
// reads DriveFile and unmounts it.
func readDrive(root string, d blockdev.Device) (data []byte, err error) {
	dir, err := os.MkdirTemp(filepath.Join(root, filepath.Dir(StatusPath)), "configdrive-")
	if err != nil {
		return nil, errorAt("creating a mount point in", filepath.Dir(StatusPath), err)
	}
	defer os.Remove(dir)
	flags := uintptr(syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC)
	if err := syscall.Mount(filepath.Join(root, d.Path), dir, string(d.Label.FS), flags, ""); err != nil {
		return nil, fmt.Errorf("mounting %s read-only: %w", d.Label.FS, err)
	}
	defer func() {
		if uerr := syscall.Unmount(dir, 0); uerr != nil {
			if derr := syscall.Unmount(dir, syscall.MNT_DETACH); derr != nil && err == nil {
				err = fmt.Errorf("unmounting: %w", uerr)
			}
		}
	}()
	data, err = nodeconfig.ReadFile(filepath.Join(dir, DriveFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no %s at the root of the drive", DriveFile)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", DriveFile, err)
	}
	return data, nil
}
