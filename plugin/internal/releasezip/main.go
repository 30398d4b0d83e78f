// Command releasezip writes a release archive of the Packer plugin: a zip
// holding one executable file under a given name, with a fixed time and
// mode, so that the same binary gives the same archive bytes. It is
// scripts/release-plugin.sh's; Go's archive/zip is the only dependency.
//
//	releasezip [-time UNIX] OUT.zip NAME FILE
//
// The time defaults to $SOURCE_DATE_EPOCH, else 1980-01-01 (the earliest
// a zip can hold). The archive is written to a temporary file and renamed.
package main

import (
	"archive/zip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// zipEpoch is the earliest time a zip entry can carry.
var zipEpoch = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// write writes a zip at out holding src as name (mode 0755, time mtime).
func write(out, name, src string, mtime time.Time) (err error) {
	if name == "" || strings.ContainsAny(name, "/\\") || name == "." || name == ".." {
		return fmt.Errorf("entry name %q: want a plain file name", name)
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", src)
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	zw := zip.NewWriter(tmp)
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: mtime.UTC()}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, in); err != nil {
		return fmt.Errorf("reading %s: %w", src, err)
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// entryTime is the entries' time: flag, else $SOURCE_DATE_EPOCH, else
// the zip epoch.
func entryTime(flagValue int64, env string) (time.Time, error) {
	secs := flagValue
	if secs < 0 && env != "" {
		n, err := strconv.ParseInt(env, 10, 64)
		if err != nil || n < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the epoch", env)
		}
		secs = n
	}
	if secs < 0 {
		return zipEpoch, nil
	}
	t := time.Unix(secs, 0).UTC()
	if t.Before(zipEpoch) {
		t = zipEpoch
	}
	return t, nil
}

func main() {
	epoch := flag.Int64("time", -1, "the entries' time, seconds since the epoch")
	flag.Parse()
	err := errors.New("usage: releasezip [-time UNIX] OUT.zip NAME FILE")
	if flag.NArg() == 3 {
		var t time.Time
		if t, err = entryTime(*epoch, os.Getenv("SOURCE_DATE_EPOCH")); err == nil {
			err = write(flag.Arg(0), flag.Arg(1), flag.Arg(2), t)
		}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe
		}
		fmt.Fprintln(os.Stderr, "releasezip:", err)
		os.Exit(1)
	}
}
