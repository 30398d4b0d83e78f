package disk

import (
	"bytes"
	"fmt"
	"io"
	"os"
)

// BytesFile is a File with the given content.
func BytesFile(espPath string, content []byte) File {
	return File{
		Path: espPath,
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(content)), nil },
		Size: int64(len(content)),
	}
}

// HostFile is a File read from hostPath on the build host; its size is
// taken now.
func HostFile(espPath, hostPath string) (File, error) {
	fi, err := os.Stat(hostPath)
	if err != nil {
		return File{}, fmt.Errorf("reading ESP file %s: %w", espPath, err)
	}
	if !fi.Mode().IsRegular() {
		return File{}, fmt.Errorf("reading ESP file %s: %s is not a regular file", espPath, hostPath)
	}
	return File{
		Path: espPath,
		Open: func() (io.ReadCloser, error) { return os.Open(hostPath) },
		Size: fi.Size(),
	}, nil
}
