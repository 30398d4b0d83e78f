package nodeconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// MaxSize is the largest node config read, in bytes, from any source (a
// file on the kernel command line, a systemd credential, a config drive, a
// metadata service or URL) and by `nodebake node check`. 1 MiB holds a full
// WireGuard mesh of about 5000 peers (about 150 bytes each) and RSA-8192
// certificate chains with room to spare, while every allocation made on the
// way stays a small multiple of it. Cloud user data is smaller still (EC2
// 16 KiB, Azure 64 KiB, GCE 256 KiB).
const MaxSize = 1 << 20

// TooLargeError is a source holding more than Limit bytes.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("larger than the limit of %d bytes", e.Limit)
}

// NotRegularError is a source that is not a regular file.
type NotRegularError struct{ Type string }

func (e *NotRegularError) Error() string {
	return "not a regular file but a " + e.Type
}

// ReadProblem is the problem of a node config that could not be read:
// field "config" when it is too large, else "source" (not found, not a
// regular file, unreadable).
func ReadProblem(err error) Problems {
	var tl *TooLargeError
	if errors.As(err, &tl) {
		return Problems{{Field: documentField, Message: err.Error()}}
	}
	return Problems{{Field: "source", Message: err.Error()}}
}

// ReadFile reads a node config from the file at path: a regular file (or a
// symbolic link to one) of at most MaxSize bytes. See ReadRegularFile.
func ReadFile(path string) ([]byte, error) { return ReadRegularFile(path, MaxSize) }

// Read reads a node config from r, for sources that are streams (network
// sources): at most MaxSize bytes, or a *TooLargeError.
func Read(r io.Reader) ([]byte, error) {
	var b bytes.Buffer
	if _, err := b.ReadFrom(io.LimitReader(r, MaxSize+1)); err != nil {
		return nil, err
	}
	if b.Len() > MaxSize {
		return nil, &TooLargeError{Limit: MaxSize}
	}
	return b.Bytes(), nil
}

// ReadRegularFile reads at most limit bytes from path, which must be a
// regular file or a symbolic link to one. Anything else (a directory, a
// named pipe, a device, a socket) is a *NotRegularError at once, without
// blocking: the file is checked before it is opened, opened non-blocking,
// and checked again on the open descriptor. A file with more than limit
// bytes is a *TooLargeError; at most limit+1 bytes are read, also from
// files whose size the kernel does not report (/proc). Errors do not repeat
// path: the caller names the source.
func ReadRegularFile(path string, limit int64) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, cause(err)
	}
	if err := regular(info, limit); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, cause(err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, cause(err)
	}
	if err := regular(opened, limit); err != nil {
		return nil, err
	}
	if !os.SameFile(info, opened) {
		return nil, errors.New("replaced while being opened")
	}
	var b bytes.Buffer
	b.Grow(int(opened.Size()) + 1)
	if _, err := b.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, cause(err)
	}
	if int64(b.Len()) > limit {
		return nil, &TooLargeError{Limit: limit}
	}
	return b.Bytes(), nil
}

func regular(info fs.FileInfo, limit int64) error {
	m := info.Mode()
	switch {
	case m.IsRegular():
		if info.Size() > limit {
			return &TooLargeError{Limit: limit}
		}
		return nil
	case m.IsDir():
		return &NotRegularError{Type: "directory"}
	case m&fs.ModeNamedPipe != 0:
		return &NotRegularError{Type: "named pipe"}
	case m&fs.ModeSocket != 0:
		return &NotRegularError{Type: "socket"}
	case m&fs.ModeCharDevice != 0:
		return &NotRegularError{Type: "character device"}
	case m&fs.ModeDevice != 0:
		return &NotRegularError{Type: "block device"}
	}
	return &NotRegularError{Type: "special file (" + m.Type().String() + ")"}
}

// cause strips the path from an *fs.PathError, so that the caller can name
// the file as the image sees it.
func cause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
