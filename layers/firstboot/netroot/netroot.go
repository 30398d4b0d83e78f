// Package netroot downloads the root filesystem image of a network-booted
// node inside the initrd: an HTTP GET, retried with backoff while the
// network comes up, streamed to a file while it is hashed, and kept only
// when its SHA-256 matches the one the kernel command line names. On any
// failure the file is removed: the node fails closed instead of booting a
// root it cannot vouch for.
//
// It uses the standard library only, so that the program stays small and
// static.
package netroot

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout    = 2 * time.Minute
	DefaultMinBackoff = 500 * time.Millisecond
	DefaultMaxBackoff = 8 * time.Second
)

// Options describe one download.
type Options struct {
	// URL is the http:// or https:// address of the image.
	URL string
	// SHA256 is the expected digest, 64 hex digits.
	SHA256 string
	// Out is the file to write; it must not exist yet (a leftover is
	// replaced). Its directory must exist.
	Out string
	// Timeout bounds the whole download, retries included; DefaultTimeout
	// when zero.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts (doubling
	// from MinBackoff); the defaults when zero.
	MinBackoff, MaxBackoff time.Duration
	// Client does the requests; a client without overall timeout when nil.
	Client *http.Client
	// Log receives one line per failed attempt; may be nil.
	Log io.Writer
}

// Result describes a finished download.
type Result struct {
	Bytes    int64
	Attempts int
	Elapsed  time.Duration
}

// permanentError is a failure that retrying cannot cure (a 4xx status, a
// checksum mismatch, a local write error).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Validate checks the options without doing anything.
func (o Options) Validate() error {
	u, err := url.Parse(o.URL)
	if err != nil {
		return fmt.Errorf("url %q: %w", o.URL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: want an http:// or https:// URL", o.URL)
	}
	if u.Host == "" {
		return fmt.Errorf("url %q: no host", o.URL)
	}
	if len(o.SHA256) != 64 {
		return fmt.Errorf("sha256 %q: want 64 hex digits", o.SHA256)
	}
	if _, err := hex.DecodeString(o.SHA256); err != nil {
		return fmt.Errorf("sha256 %q: want 64 hex digits: %w", o.SHA256, err)
	}
	if o.Out == "" {
		return errors.New("out: no output file")
	}
	return nil
}

// CleanURL collapses repeated slashes in the path of u ("http://h/a//b"
// becomes "http://h/a/b"): a base URL that ends in a slash, joined with
// "/root.squashfs" by a boot script, still names the file.
func CleanURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	host, p, ok := strings.Cut(rest, "/")
	if !ok {
		return raw
	}
	q := ""
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p, q = p[:i], p[i:]
	}
	for strings.Contains(p, "//") {
		p = strings.ReplaceAll(p, "//", "/")
	}
	return scheme + "://" + host + "/" + strings.TrimPrefix(p, "/") + q
}

// Fetch downloads o.URL to o.Out and checks its digest. It retries
// connection errors and 5xx or 429 statuses with backoff until o.Timeout;
// a 4xx status or a digest mismatch fails at once. On failure o.Out does
// not exist.
func Fetch(ctx context.Context, o Options) (Result, error) {
	if err := o.Validate(); err != nil {
		return Result{}, err
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	client := o.Client
	if client == nil {
		client = &http.Client{}
	}
	want := strings.ToLower(o.SHA256)
	u := CleanURL(o.URL)
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	backoff := o.MinBackoff
	var res Result
	for {
		res.Attempts++
		n, err := attempt(ctx, client, u, o.Out, want)
		if err == nil {
			res.Bytes, res.Elapsed = n, time.Since(start)
			return res, nil
		}
		_ = os.Remove(o.Out)
		var perm permanentError
		if errors.As(err, &perm) {
			return res, err
		}
		if o.Log != nil {
			fmt.Fprintf(o.Log, "netroot: attempt %d: %v; retrying in %s\n", res.Attempts, err, backoff)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return res, fmt.Errorf("giving up on %s after %d attempts in %s: %w", u, res.Attempts, time.Since(start).Round(time.Second), err)
		case <-t.C:
		}
		backoff = min(2*backoff, o.MaxBackoff)
	}
}

// attempt does one GET into out and returns the byte count.
func attempt(ctx context.Context, client *http.Client, u, out, want string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, permanentError{fmt.Errorf("request for %s: %w", u, err)}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout:
		return 0, fmt.Errorf("GET %s: %s", u, resp.Status)
	default:
		return 0, permanentError{fmt.Errorf("GET %s: %s", u, resp.Status)}
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o444)
	if err != nil {
		return 0, permanentError{fmt.Errorf("creating %s: %w", out, err)}
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), resp.Body)
	if err != nil {
		f.Close()
		var pe *os.PathError
		if errors.As(err, &pe) {
			return n, permanentError{fmt.Errorf("writing %s: %w", out, err)}
		}
		return n, fmt.Errorf("GET %s: reading the body after %d bytes: %w", u, n, err)
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		f.Close()
		return n, fmt.Errorf("GET %s: got %d of %d bytes", u, n, resp.ContentLength)
	}
	if err := f.Close(); err != nil {
		return n, permanentError{fmt.Errorf("closing %s: %w", out, err)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		return n, permanentError{fmt.Errorf("%s: sha256 %s, want %s (%d bytes): refusing it", u, got, want, n)}
	}
	return n, nil
}

// Describe is a one-line summary of a finished download for logs.
func (r Result) Describe(out string) string {
	rate := ""
	if s := r.Elapsed.Seconds(); s > 0 {
		rate = fmt.Sprintf(", %.1f MiB/s", float64(r.Bytes)/(1<<20)/s)
	}
	return fmt.Sprintf("%s: %d bytes verified in %s (%d attempt(s)%s)", filepath.Base(out), r.Bytes, r.Elapsed.Round(time.Millisecond), r.Attempts, rate)
}
