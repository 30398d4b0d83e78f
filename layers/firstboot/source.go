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
	"github.com/nodebake/nodebake/layers/firstboot/cmdline"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
)

// drivePoll is how often the devices are scanned while waiting for a
// config drive.
const drivePoll = 100 * time.Millisecond

// findConfig returns the node config from the first source found, in
// order:
//
//  1. nodebake.config= on the kernel command line;
//  2. the systemd credential;
//  3. a NODEBAKE config drive, from one scan of the block devices (no
//     waiting);
//  4. the platform the node is on (package platform: the metadata
//     services, config-2 and cidata drives, nodebake.url=), found without
//     the network from what the firmware reports, and read within the
//     platform's time limit;
//  5. only when no platform was found: the NODEBAKE drive again, waiting
//     up to opts.DriveWait for it to appear.
//
// Local sources come first and cost no network. A machine that is no
// platform pays for detection only (the SMBIOS strings, the labels already
// scanned) and waits on no network. The detection is left in det (for
// the platform's report) and named in st.
func findConfig(ctx context.Context, opts Options, st *Status, det *platform.Detection) ([]byte, string, error) {
	root := opts.Root
	raw, err := nodeconfig.ReadRegularFile(filepath.Join(root, cmdline.Path), cmdline.MaxSize)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", fmt.Errorf("reading the kernel command line %s: %w", cmdline.Path, err)
	}
	params := cmdline.Parse(string(raw))
	if p, ok := params.Get(CmdlineParam); ok {
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

	devs, err := blockdev.Scan(root)
	if err != nil {
		return nil, "", errorAt("looking for a config drive in", "/sys/class/block", err)
	}
	if data, src, found, err := fromDrive(root, devs); found {
		return data, src, err
	}

	start := time.Now()
	popts := opts.Platform
	popts.Root, popts.Log, popts.Cmdline = root, opts.Log, &params
	popts.Devices = func() ([]blockdev.Device, error) { return devs, nil }
	d, err := platform.Detect(popts)
	st.DetectMicros = max(time.Since(start).Microseconds(), 1)
	if err != nil {
		return nil, "", err
	}
	*det = d
	st.Platform, st.PlatformReason = string(d.Platform), d.Reason
	if d.Platform != platform.None {
		logf(opts, "platform %s (%s): asking %s within %s", d.Platform, d.Reason, strings.Join(d.Sources(), ", then "), d.Timeout)
		if opts.OnPlatformWait != nil {
			opts.OnPlatformWait(d.Timeout, "asking "+d.Sources()[0])
		}
		c, err := d.Read(ctx)
		if err != nil {
			var perr *platform.Error
			if errors.As(err, &perr) {
				st.Source = perr.Source
			}
			return nil, "", fmt.Errorf("platform %s: %w", d.Platform, err)
		}
		logf(opts, "platform %s: node config from %s (%d bytes)", d.Platform, c.Source, len(c.Data))
		return c.Data, c.Source, nil
	}

	for waited := time.Duration(0); waited < opts.DriveWait; waited += drivePoll {
		select {
		case <-ctx.Done():
			return nil, "", ctx.Err()
		case <-time.After(drivePoll):
		}
		devs, err := blockdev.Scan(root)
		if err != nil {
			return nil, "", errorAt("looking for a config drive in", "/sys/class/block", err)
		}
		if data, src, found, err := fromDrive(root, devs); found {
			return data, src, err
		}
	}
	return nil, "", fmt.Errorf("no node config found: no %s= on the kernel command line, no %s credential, no block device labelled %s, no platform (%s)",
		CmdlineParam, CredentialName, DriveLabel, d.Reason)
}

// fromDrive reads the node config from the first device labelled
// DriveLabel in devs; found says whether there was one.
func fromDrive(root string, devs []blockdev.Device) (data []byte, source string, found bool, err error) {
	drives := blockdev.WithLabel(devs, DriveLabel)
	if len(drives) == 0 {
		return nil, "", false, nil
	}
	d := drives[0]
	src := "config-drive " + d.Path
	data, err = readDrive(root, d)
	if err != nil {
		return nil, "", true, fmt.Errorf("%s: %w", src, err)
	}
	return data, src, true, nil
}

// logf writes one progress line to opts.Log. Lines name sources, sizes
// and statuses, never the content of a node config.
func logf(opts Options, format string, args ...any) {
	if opts.Log != nil {
		fmt.Fprintf(opts.Log, format+"\n", args...)
	}
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
