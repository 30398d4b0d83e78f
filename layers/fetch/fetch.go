// Package fetch downloads artifacts over HTTP(S), pinned by checksum, into
// the content-addressed cache.
//
// A cached artifact is served without touching the network. A download is
// hashed while it streams into the cache and lands there only if its sum
// matches. Transient failures (connection errors, timeouts, 5xx, 429,
// truncated bodies) are retried with exponential backoff; other HTTP errors
// and checksum mismatches are not.
package fetch

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/nodebake/nodebake/layers/cache"
	"github.com/nodebake/nodebake/layers/failure"
)

// Artifact is one file to download.
type Artifact struct {
	// Name says what the artifact is, for messages ("kubelet v1.35.4 linux/amd64").
	Name string
	// URL is an http or https URL.
	URL string
	// Digest pins the content.
	Digest cache.Digest
}

// Progress reports how far a download has come.
type Progress struct {
	Artifact string
	// Done counts the bytes received in the current attempt.
	Done int64
	// Total is the expected size, or -1 when unknown.
	Total int64
	// Finished is set on the last event of a successful Fetch.
	Finished bool
	// Cached is set (with Finished) when the artifact came from the cache.
	Cached bool
}

// DownloadError is a failed download: an HTTP error status, or a transport
// error that persisted through every retry.
type DownloadError struct {
	Artifact string
	URL      string
	// StatusCode is the HTTP status of the last response, or 0 when there was none.
	StatusCode int
	// Attempts counts the requests made.
	Attempts int
	// Err is the last transport error; nil for an error status.
	Err error
}

func (e *DownloadError) Error() string {
	var what string
	switch {
	case e.Err != nil:
		what = e.Err.Error()
	default:
		what = fmt.Sprintf("%d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	msg := fmt.Sprintf("fetching %s: GET %s: %s", e.Artifact, e.URL, what)
	if e.Attempts > 1 {
		msg += fmt.Sprintf(" (after %d attempts)", e.Attempts)
	}
	return msg
}

func (e *DownloadError) Unwrap() error { return e.Err }

// Fetcher downloads artifacts into a cache. Build one with New.
type Fetcher struct {
	cache      *cache.Cache
	client     *http.Client
	retries    int
	backoff    time.Duration
	maxBackoff time.Duration
	progress   func(Progress)
	offline    bool
	onRead     bool
}

// Option configures a Fetcher.
type Option func(*Fetcher)

// WithClient sets the HTTP client. The default is like http.DefaultClient
// but gives up on a server that sends no response headers within 30s
// (then retried); ctx bounds the whole download.
func WithClient(c *http.Client) Option { return func(f *Fetcher) { f.client = c } }

// WithRetries sets how many times a transient failure is retried (default 3).
func WithRetries(n int) Option { return func(f *Fetcher) { f.retries = max(n, 0) } }

// WithBackoff sets the wait before the first retry (default 500ms); it
// doubles for each further retry, up to 30s.
func WithBackoff(d time.Duration) Option { return func(f *Fetcher) { f.backoff = max(d, 0) } }

// WithProgress sets a callback for progress events. Events come at most
// every 256 KiB or 500 ms of a download, plus one Finished event.
func WithProgress(fn func(Progress)) Option { return func(f *Fetcher) { f.progress = fn } }

// WithOffline forbids network access: artifacts must already be cached.
func WithOffline(offline bool) Option { return func(f *Fetcher) { f.offline = offline } }

// WithVerifyOnRead returns a cached artifact without hashing it first: the
// caller reads it through cache.OpenBlob, which verifies while it streams,
// and on a *cache.CorruptError evicts it (cache.EvictCorrupt) and fetches
// it again. It saves reading every cached artifact twice.
func WithVerifyOnRead(on bool) Option { return func(f *Fetcher) { f.onRead = on } }

// New returns a Fetcher storing into c.
func New(c *cache.Cache, opts ...Option) *Fetcher {
	f := &Fetcher{
		cache:      c,
		client:     defaultClient(),
		retries:    3,
		backoff:    500 * time.Millisecond,
		maxBackoff: 30 * time.Second,
	}
	for _, o := range opts {
		o(f)
	}
	return f
}

func defaultClient() *http.Client {
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          10,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
	}
	return &http.Client{Transport: t}
}

// Fetch makes sure artifact a is in the cache and returns its path there.
//
// A cached copy is re-verified (unless WithVerifyOnRead) and returned
// without any network access; a corrupt one is deleted and downloaded
// again. Errors are a
// *DownloadError, a *cache.ChecksumError naming the artifact or an error
// wrapping cache.ErrNotCached (offline), each of kind failure.Source; a bad
// URL or digest of kind failure.Invalid; or the context's error.
func (f *Fetcher) Fetch(ctx context.Context, a Artifact) (string, error) {
	name := a.Name
	if name == "" {
		name = a.URL
	}
	if err := a.Digest.Validate(); err != nil {
		return "", failure.Errorf(failure.Invalid, "fetching %s: digest: %w", name, err)
	}
	ok, err := f.cache.Has(a.Digest)
	if err != nil {
		return "", fmt.Errorf("fetching %s: %w", name, err)
	}
	if ok {
		var err error
		if !f.onRead {
			err = f.cache.Verify(a.Digest)
		}
		if err == nil {
			f.report(Progress{Artifact: name, Total: -1, Finished: true, Cached: true})
			return f.cache.Path(a.Digest), nil
		}
		if !errors.Is(err, cache.ErrCorrupt) {
			return "", fmt.Errorf("fetching %s: %w", name, err)
		}
		if err := f.cache.Remove(a.Digest); err != nil {
			return "", fmt.Errorf("fetching %s: %w", name, err)
		}
	}
	if f.offline {
		return "", failure.Errorf(failure.Source, "fetching %s: offline and %w (%s)", name, cache.ErrNotCached, a.Digest)
	}
	u, err := url.Parse(a.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", failure.Errorf(failure.Invalid, "fetching %s: url %q: want an http or https URL", name, a.URL)
	}
	shownURL := u.Redacted()

	wait := f.backoff
	for attempt := 1; ; attempt++ {
		p, retry, err := f.try(ctx, name, a)
		if err == nil {
			return p, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("fetching %s: %w", name, ctx.Err())
		}
		var ce *cache.ChecksumError
		if errors.As(err, &ce) {
			ce.Artifact = name
			return "", failure.New(failure.Source, ce)
		}
		var de *DownloadError
		if !errors.As(err, &de) {
			return "", fmt.Errorf("fetching %s: %w", name, err)
		}
		de.Artifact, de.URL, de.Attempts = name, shownURL, attempt
		if !retry || attempt > f.retries {
			return "", failure.New(failure.Source, de)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("fetching %s: %w", name, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, f.maxBackoff)
	}
}

// try makes one request. It returns the cache path on success; otherwise
// an error (a *DownloadError for network trouble) and whether a retry may
// help.
func (f *Fetcher) try(ctx context.Context, name string, a Artifact) (string, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return "", false, err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", transient(err), &DownloadError{Err: unwrapURLError(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		code := resp.StatusCode
		retry := code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
		return "", retry, &DownloadError{StatusCode: code}
	}
	body := &progressReader{r: resp.Body, fn: f.progress, ev: Progress{Artifact: name, Total: resp.ContentLength}}
	p, err := f.cache.Put(a.Digest, body)
	if body.err != nil {
		// The network failed mid-body (including a body shorter than its
		// Content-Length, which surfaces as io.ErrUnexpectedEOF).
		return "", transient(body.err), &DownloadError{StatusCode: resp.StatusCode, Err: body.err}
	}
	if err != nil {
		return "", false, err
	}
	body.finish()
	return p, false, nil
}

// transient reports whether a transport error may go away on retry: all
// may (connection resets, timeouts, truncated bodies) except an untrusted
// certificate and an unknown host name.
func transient(err error) bool {
	var cv *tls.CertificateVerificationError
	var dns *net.DNSError
	switch {
	case errors.As(err, &cv):
		return false
	case errors.As(err, &dns) && dns.IsNotFound:
		return false
	}
	return true
}

// unwrapURLError drops the *url.Error wrapper, whose message repeats the
// method and URL that DownloadError already shows.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// report sends ev to the progress callback, if any.
func (f *Fetcher) report(ev Progress) {
	if f.progress != nil {
		f.progress(ev)
	}
}

// progressReader counts bytes, throttles progress events and remembers
// the first read error so network failures can be told from cache ones.
type progressReader struct {
	r        io.Reader
	fn       func(Progress)
	ev       Progress
	err      error
	lastDone int64
	lastTime time.Time
}

const (
	progressBytes    = 256 << 10
	progressInterval = 500 * time.Millisecond
)

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.ev.Done += int64(n)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	if p.fn != nil && n > 0 {
		now := time.Now()
		if p.ev.Done-p.lastDone >= progressBytes || now.Sub(p.lastTime) >= progressInterval {
			p.lastDone, p.lastTime = p.ev.Done, now
			p.fn(p.ev)
		}
	}
	return n, err
}

// finish sends the final event.
func (p *progressReader) finish() {
	if p.fn != nil {
		ev := p.ev
		ev.Finished = true
		p.fn(ev)
	}
}
