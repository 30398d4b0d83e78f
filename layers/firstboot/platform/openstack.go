package platform

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/nodebake/nodebake/layers/firstboot/blockdev"
	"github.com/nodebake/nodebake/layers/firstboot/fat"
	"github.com/nodebake/nodebake/layers/firstboot/iso9660"
)

// Where OpenStack keeps user data: on the config drive and at the
// metadata service.
const (
	ConfigDriveUserData  = "openstack/latest/user_data"
	openStackUserDataURL = "/openstack/latest/user_data"
	// NoCloudUserData is the user data file at the root of a cidata drive.
	NoCloudUserData = "user-data"
)

// readConfigDrive reads the user data from a config-2 drive. A drive
// without user data ends the lookup (as in cloud-init, a config drive
// that is present is the answer, and the metadata service is not asked).
func readConfigDrive(ctx context.Context, e *env) ([]byte, string, error) {
	return readDrive(e, configDriveLabels, ConfigDriveUserData)
}

// readOpenStackMetadata reads the user data from the metadata service.
func readOpenStackMetadata(ctx context.Context, e *env) ([]byte, string, error) {
	resp, err := e.do(ctx, request{
		method: http.MethodGet,
		url:    e.endpoint(e.opts.Endpoints.OpenStack, defaultOpenStackMD) + openStackUserDataURL,
		limit:  e.opts.MaxSize,
	})
	if err != nil {
		return nil, "", err
	}
	switch resp.status {
	case http.StatusOK:
		data, err := decode(resp.body, false, e.opts.MaxSize)
		return data, "", err
	case http.StatusNotFound:
		return nil, "", noData("no user data (404)")
	default:
		return nil, "", unexpected(resp.status)
	}
}

// readNoCloud reads user-data from a cidata drive.
func readNoCloud(ctx context.Context, e *env) ([]byte, string, error) {
	return readDrive(e, cidataLabels, NoCloudUserData)
}

// readDrive reads file from the first drive labelled one of labels.
func readDrive(e *env, labels []string, file string) ([]byte, string, error) {
	dev, ok, err := e.probe.drive(labels...)
	if err != nil {
		return nil, "", err
	}
	if !ok {
		return nil, "", noData("no drive labelled %s", labels[0])
	}
	where := e.source + " " + dev.Path
	data, err := ReadDriveFile(e.opts.Root, dev, file, e.opts.MaxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, where, fmt.Errorf("%s: no %s on the drive", dev.Path, file)
	}
	if err != nil {
		return nil, where, fmt.Errorf("%s: %w", dev.Path, err)
	}
	data, err = decode(data, false, e.opts.MaxSize)
	if errors.Is(err, ErrNoData) {
		return nil, where, fmt.Errorf("%s: %s is empty", dev.Path, file)
	}
	if err != nil {
		return nil, where, fmt.Errorf("%s: %s: %w", dev.Path, file, err)
	}
	return data, where, nil
}

// ReadDriveFile reads a file from a drive's ISO 9660 or FAT filesystem
// without mounting it: no mount point, privilege or kernel filesystem
// module is needed, and the hostile bytes are parsed by bounded code in
// this process rather than by the kernel. The file must hold at most
// limit bytes. A missing file wraps fs.ErrNotExist.
func ReadDriveFile(root string, dev blockdev.Device, file string, limit int64) ([]byte, error) {
	f, err := os.Open(filepath.Join(root, dev.Path))
	if err != nil {
		return nil, fmt.Errorf("opening the drive: %w", err)
	}
	defer f.Close()
	switch dev.Label.FS {
	case blockdev.ISO9660:
		fsys, err := iso9660.Open(f)
		if err != nil {
			return nil, err
		}
		return fsys.ReadFile(file, limit)
	case blockdev.FAT:
		fsys, err := fat.Open(f)
		if err != nil {
			return nil, err
		}
		return fsys.ReadFile(file, limit)
	default:
		return nil, fmt.Errorf("filesystem %q is not supported", dev.Label.FS)
	}
}
