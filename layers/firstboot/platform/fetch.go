package platform

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// maxHeaderBytes bounds a response's headers.
const maxHeaderBytes = 64 << 10

// newClient returns the HTTP client of the readers: no proxy (metadata
// services must be reached directly, and the environment of a boot
// service has no business steering them), no
// transparent decompression (gzip is ours to bound), TLS 1.2 or newer
// verified against opts.RootCAs or the system roots, and redirects only
// from https to https.
func newClient(opts Options) *http.Client {
	// Each attempt's context bounds its dial, handshake, headers and body.
	dialer := &net.Dialer{}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: opts.RootCAs, MinVersion: tls.VersionTLS12},
		MaxResponseHeaderBytes: maxHeaderBytes,
		DisableCompression:     true,
		MaxIdleConnsPerHost:    2,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return permanent(errors.New("more than 5 redirects"))
			}
			if via[0].URL.Scheme != "https" || req.URL.Scheme != "https" {
				return permanent(fmt.Errorf("redirect to %s://%s refused", req.URL.Scheme, req.URL.Host))
			}
			return nil
		},
	}
}

// request is one HTTP request of a reader.
type request struct {
	method string
	url    string
	header http.Header
	body   []byte
	// limit bounds the body of a 2xx answer.
	limit int64
	// retry lists statuses to retry besides 5xx and 429.
	retry []int
}

// response is a final answer: a status that is not retried. body is read
// for 2xx answers only.
type response struct {
	status int
	header http.Header
	body   []byte
}

// permanentError is a failure retrying cannot cure.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return &permanentError{err} }

// do sends req until it gets an answer that is not retried: connection
// errors, timeouts, 5xx, 429 and req.retry are retried with backoff until
// ctx ends. A 2xx body over req.limit, a TLS verification failure or a
// refused redirect fail at once.
func (e *env) do(ctx context.Context, req request) (response, error) {
	start := time.Now()
	backoff := e.opts.MinBackoff
	var prev error
	for attempt := 1; ; attempt++ {
		resp, err := e.attempt(ctx, req)
		if err == nil {
			if !retryStatus(resp.status, req.retry) {
				return resp, nil
			}
			err = fmt.Errorf("%s", statusText(resp.status))
		}
		var perm *permanentError
		if errors.As(err, &perm) {
			return response{}, perm.err
		}
		if ctx.Err() != nil {
			if prev != nil {
				err = prev // this attempt was cut short by the time limit; the one before says more
			}
			return response{}, e.gaveUp(ctx, attempt, start, err)
		}
		prev = err
		wait := backoff
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
			wait = max(time.Until(dl), 0)
		}
		e.logf("attempt %d failed (%v); retrying in %s", attempt, err, wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return response{}, e.gaveUp(ctx, attempt, start, err)
		case <-t.C:
		}
		backoff = min(2*backoff, e.opts.MaxBackoff)
	}
}

func (e *env) gaveUp(ctx context.Context, attempts int, start time.Time, last error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w: gave up after %d attempts in %s; last: %v", ErrTimeout, attempts, time.Since(start).Round(time.Millisecond), last)
	}
	return fmt.Errorf("cancelled after %d attempts: %w; last: %v", attempts, ctx.Err(), last)
}

// attempt sends req once, within the attempt timeout.
func (e *env) attempt(parent context.Context, req request) (response, error) {
	ctx, cancel := context.WithTimeout(parent, e.opts.AttemptTimeout)
	defer cancel()
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, req.url, body)
	if err != nil {
		return response{}, permanent(fmt.Errorf("making the request: %w", err))
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	hr.Header.Set("User-Agent", "nodebake-firstboot")
	resp, err := e.client.Do(hr)
	if err != nil {
		// Drop the "Get URL:" wrapping: a URL may carry a credential in
		// its query, and errors and logs name the source instead.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) && parent.Err() == nil {
			err = fmt.Errorf("no answer within %s", e.opts.AttemptTimeout)
		}
		var perm *permanentError
		var cert *tls.CertificateVerificationError
		if errors.As(err, &perm) || errors.As(err, &cert) {
			return response{}, permanent(err)
		}
		return response{}, err
	}
	defer resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096)) // let the connection be reused
		return r, nil
	}
	if resp.ContentLength > req.limit {
		return response{}, permanent(fmt.Errorf("answer of %d bytes, more than %d", resp.ContentLength, req.limit))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, req.limit+1))
	if err != nil {
		return response{}, fmt.Errorf("reading the answer: %w", err)
	}
	if int64(len(b)) > req.limit {
		return response{}, permanent(fmt.Errorf("answer of more than %d bytes", req.limit))
	}
	r.body = b
	return r, nil
}

func retryStatus(status int, extra []int) bool {
	if status >= 500 || status == http.StatusTooManyRequests {
		return true
	}
	for _, s := range extra {
		if status == s {
			return true
		}
	}
	return false
}

// statusText is e.g. "404 Not Found".
func statusText(status int) string {
	return fmt.Sprintf("%d %s", status, http.StatusText(status))
}

// unexpected is the error for a status a reader does not expect.
func unexpected(status int) error {
	return fmt.Errorf("unexpected answer %s", statusText(status))
}

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// decode turns a source's bytes into the node config: base64 first when
// the platform says the data is base64 (ASCII whitespace is ignored), then
// gunzip when the data starts with gzip's magic bytes, never producing
// more than max bytes. Empty data is ErrNoData.
func decode(data []byte, b64 bool, max int64) ([]byte, error) {
	if b64 {
		clean := make([]byte, 0, len(data))
		for _, c := range data {
			if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
				clean = append(clean, c)
			}
		}
		out := make([]byte, base64.StdEncoding.DecodedLen(len(clean)))
		n, err := base64.StdEncoding.Decode(out, clean)
		if err != nil {
			return nil, fmt.Errorf("decoding base64: %w", err)
		}
		data = out[:n]
	}
	if len(data) == 0 {
		return nil, noData("empty")
	}
	if bytes.HasPrefix(data, gzipMagic) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("decompressing gzip: %w", err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, max+1))
		if err != nil {
			return nil, fmt.Errorf("decompressing gzip: %w", err)
		}
		if int64(len(out)) > max {
			return nil, fmt.Errorf("decompressing gzip: more than %d bytes", max)
		}
		if len(out) == 0 {
			return nil, noData("empty after decompressing")
		}
		data = out
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%d bytes, more than %d", len(data), max)
	}
	return data, nil
}

// encodedLimit bounds the body of a base64 answer that decodes to at most
// max bytes, allowing a line break every 64 characters.
func encodedLimit(max int64) int64 {
	n := (max + 2) / 3 * 4
	return n + n/64*2 + 2
}
