package authenticode

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/nodebake/nodebake/layers/spec"
)

// LoadSigner reads a signing key (keyPath) and its certificate (certPath)
// from files, as ParseSigner takes them. The key file must be a regular
// file that only its owner can read (spec.CheckKeyMode), owned by the user
// running nodebake or by root, as opened. It is read once, here; the
// returned Signer holds the key in memory only.
func LoadSigner(keyPath, certPath string) (*Signer, error) {
	key, err := readBounded(keyPath, true)
	if err != nil {
		return nil, fmt.Errorf("the signing key: %w", err)
	}
	cert, err := readBounded(certPath, false)
	if err != nil {
		return nil, fmt.Errorf("the signing certificate: %w", err)
	}
	s, err := ParseSigner(key, cert)
	clear(key)
	return s, err
}

// readBounded reads a regular file of at most maxPEMSize bytes; a key
// (owned) must belong to the effective user or root, checked on the file
// opened.
func readBounded(p string, owned bool) ([]byte, error) {
	// Non-blocking: a named pipe in place of the file must not hang the
	// build (it is refused below); a regular file ignores the flag.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if owned {
		if err := spec.CheckKeyMode(p, fi); err != nil {
			return nil, err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil, errors.New("cannot read the owner of " + p)
		}
		if uid := int(st.Uid); uid != os.Geteuid() && uid != 0 {
			return nil, fmt.Errorf("%s belongs to uid %d: a signing key must belong to the user signing (uid %d) or root", p, uid, os.Geteuid())
		}
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEMSize {
		return nil, fmt.Errorf("%s is larger than %d bytes", p, maxPEMSize)
	}
	return b, nil
}
