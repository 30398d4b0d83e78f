package cache

import (
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
)

// verifyingReader reads a cached file and hashes what it reads. When the
// last byte has been read it checks the digest (and that the file ends
// where it should) and returns io.EOF, or a *CorruptError instead of
// io.EOF when the content is not what was recorded. Every later Read and
// Close return the same verdict.
type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	want Digest
	// size is the size the content must have: the verdict comes when it
	// has been read.
	size int64
	n    int64
	item Kind
	key  string
	file string

	done    bool
	verdict error
}

func newVerifyingReader(f *os.File, want Digest, size int64, item Kind, key, file string) *verifyingReader {
	return &verifyingReader{f: f, h: newHash(want.Algorithm), want: want, size: size, item: item, key: key, file: file}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done {
		return 0, v.verdict
	}
	if v.size >= 0 {
		if rem := v.size - v.n; int64(len(p)) > rem {
			p = p[:rem]
		}
		if len(p) == 0 {
			return 0, v.finish(false)
		}
	}
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		return n, v.finish(true)
	case err != nil:
		return n, err
	case v.size >= 0 && v.n == v.size:
		return n, v.finish(false)
	}
	return n, nil
}

// finish decides the verdict once the recorded size has been read (or the
// file ended: atEOF).
func (v *verifyingReader) finish(atEOF bool) error {
	v.done = true
	if !atEOF {
		// The file must end here: one more byte means it grew.
		var probe [1]byte
		if m, _ := v.f.Read(probe[:]); m > 0 {
			actual := v.n + int64(m)
			if fi, err := v.f.Stat(); err == nil {
				actual = fi.Size()
			}
			v.verdict = &CorruptError{Item: v.item, Key: v.key, File: v.file, Problem: ProblemSize, RecordedSize: v.size, ActualSize: actual}
			return v.verdict
		}
	}
	if v.size >= 0 && v.n != v.size {
		v.verdict = &CorruptError{Item: v.item, Key: v.key, File: v.file, Problem: ProblemSize, RecordedSize: v.size, ActualSize: v.n}
		return v.verdict
	}
	if got := sum(v.want.Algorithm, v.h); got != v.want {
		v.verdict = &CorruptError{Item: v.item, Key: v.key, File: v.file, Problem: ProblemContent, Recorded: v.want, Actual: got,
			RecordedSize: v.size, ActualSize: v.n}
		return v.verdict
	}
	v.verdict = io.EOF
	return v.verdict
}

// Close closes the file. It returns the *CorruptError when the content was
// read to the end and did not verify; a reader closed before its end has
// verified nothing and says nothing.
func (v *verifyingReader) Close() error {
	err := v.f.Close()
	if v.done && v.verdict != io.EOF {
		return v.verdict
	}
	return err
}

// Stat describes the file being read.
func (v *verifyingReader) Stat() (fs.FileInfo, error) { return v.f.Stat() }
