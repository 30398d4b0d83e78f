package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// fileLayer is a v1.Layer whose content is a file on disk, stored as is
// (its compressed and uncompressed forms are the same bytes). The digest is
// computed by one streaming pass when the layer is made; Compressed opens the
// file again and verifies it still has that digest as it is read.
type fileLayer struct {
	path   string
	digest v1.Hash
	size   int64
	mt     types.MediaType
}

var _ v1.Layer = (*fileLayer)(nil)

// newFileLayer hashes the file at path.
func newFileLayer(path string, mt types.MediaType) (*fileLayer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return &fileLayer{
		path:   path,
		digest: v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))},
		size:   n,
		mt:     mt,
	}, nil
}

func (l *fileLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) DiffID() (v1.Hash, error)            { return l.digest, nil }
func (l *fileLayer) Size() (int64, error)                { return l.size, nil }
func (l *fileLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *fileLayer) Uncompressed() (io.ReadCloser, error) {
	return l.Compressed()
}

// Compressed opens the file; reading it fails if its content no longer has
// the digest and size computed when the layer was made.
func (l *fileLayer) Compressed() (io.ReadCloser, error) {
	f, err := os.Open(l.path)
	if err != nil {
		return nil, err
	}
	return &verifyingReader{f: f, path: l.path, want: l.digest, size: l.size, h: sha256.New()}, nil
}

// verifyingReader hashes what it reads and fails at the end of the file if
// the file changed since it was hashed.
type verifyingReader struct {
	f    *os.File
	path string
	want v1.Hash
	size int64
	n    int64
	h    interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if err == io.EOF {
		got := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(r.h.Sum(nil))}
		if r.n != r.size || got != r.want {
			return n, fmt.Errorf("%s changed while it was pushed (%d bytes, %s; was %d bytes, %s)", r.path, r.n, got, r.size, r.want)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }
