package platform

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// readMetalURL reads the node config from the https URL on the kernel
// command line and checks it against the sha256 there before anything
// else looks at it.
func readMetalURL(ctx context.Context, e *env) ([]byte, string, error) {
	raw, ok := e.probe.params.Get(ParamURL)
	if !ok {
		return nil, "", fmt.Errorf("%s= is not on the kernel command line", ParamURL)
	}
	u, err := checkURL(raw)
	if err != nil {
		return nil, "", err
	}
	want, err := checkDigest(e.probe.params)
	if err != nil {
		return nil, "", err
	}
	where := e.source + " " + redact(u)
	resp, err := e.do(ctx, request{method: http.MethodGet, url: u.String(), limit: e.opts.MaxSize})
	if err != nil {
		return nil, where, err
	}
	if resp.status != http.StatusOK {
		return nil, where, fmt.Errorf("%s: %w", redact(u), unexpected(resp.status))
	}
	sum := sha256.Sum256(resp.body)
	if got := hex.EncodeToString(sum[:]); got != want {
		return nil, where, fmt.Errorf("%s: sha256 %s, want %s (%s=)", redact(u), got, want, ParamSHA256)
	}
	data, err := decode(resp.body, false, e.opts.MaxSize)
	if errors.Is(err, ErrNoData) {
		return nil, where, fmt.Errorf("%s: empty", redact(u))
	}
	return data, where, err
}

// checkURL accepts only https URLs with a host and without credentials.
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s=: not a URL", ParamURL)
	}
	if u.Scheme != "https" {
		return nil, fmt.Errorf("%s=: the scheme must be https (the node config holds private keys), not %q", ParamURL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%s=: no host", ParamURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("%s=: credentials in the URL are not supported", ParamURL)
	}
	return u, nil
}

// checkDigest returns nodebake.sha256=, which must be 64 hex digits.
func checkDigest(params interface{ Get(string) (string, bool) }) (string, error) {
	v, ok := params.Get(ParamSHA256)
	if !ok || v == "" {
		return "", fmt.Errorf("%s= is missing: the node config at %s= must be pinned by its sha256", ParamSHA256, ParamURL)
	}
	v = strings.ToLower(v)
	if b, err := hex.DecodeString(v); err != nil || len(b) != sha256.Size {
		return "", fmt.Errorf("%s=%q: want 64 hex digits", ParamSHA256, v)
	}
	return v, nil
}

// redact drops the query and fragment of a URL (a presigned URL carries
// its credential there), so that it can be shown and written to the
// world-readable status file.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.RawFragment = "", "", ""
	return c.String()
}
