package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
)

// EC2 instance metadata service, version 2: a session token first (PUT),
// then the user data with the token.
const (
	ec2TokenPath    = "/latest/api/token"
	ec2UserDataPath = "/latest/user-data"
	ec2TTLHeader    = "X-aws-ec2-metadata-token-ttl-seconds"
	ec2TokenHeader  = "X-aws-ec2-metadata-token"
	// ec2TokenTTL is the token lifetime asked for, in seconds: longer than
	// any lookup.
	ec2TokenTTL = 21600
	// maxEC2Token bounds the token's size (AWS's are 56 bytes).
	maxEC2Token = 4096
	// maxEC2Tokens bounds how often a refused token is replaced.
	maxEC2Tokens = 3
)

// ErrIMDSDisabled: the instance's metadata service is turned off.
var ErrIMDSDisabled = errors.New("the instance metadata service is disabled (403 on the token request)")

func readEC2(ctx context.Context, e *env) ([]byte, string, error) {
	base := e.endpoint(e.opts.Endpoints.EC2, defaultEC2)
	for range maxEC2Tokens {
		token, err := ec2Token(ctx, e, base)
		if err != nil {
			return nil, "", err
		}
		resp, err := e.do(ctx, request{
			method: http.MethodGet,
			url:    base + ec2UserDataPath,
			header: http.Header{ec2TokenHeader: {token}},
			limit:  e.opts.MaxSize,
		})
		if err != nil {
			return nil, "", err
		}
		switch resp.status {
		case http.StatusOK:
			data, err := decode(resp.body, false, e.opts.MaxSize)
			return data, "", err
		case http.StatusNotFound:
			return nil, "", noData("no user data (404)")
		case http.StatusUnauthorized:
			e.logf("the session token was refused (401); asking for a new one")
			continue
		default:
			return nil, "", unexpected(resp.status)
		}
	}
	return nil, "", fmt.Errorf("the session token was refused %d times (401)", maxEC2Tokens)
}

// ec2Token asks for a session token.
func ec2Token(ctx context.Context, e *env, base string) (string, error) {
	resp, err := e.do(ctx, request{
		method: http.MethodPut,
		url:    base + ec2TokenPath,
		header: http.Header{ec2TTLHeader: {strconv.Itoa(ec2TokenTTL)}},
		limit:  maxEC2Token,
	})
	if err != nil {
		return "", fmt.Errorf("asking for a session token: %w", err)
	}
	switch resp.status {
	case http.StatusOK:
	case http.StatusForbidden:
		return "", ErrIMDSDisabled
	default:
		return "", fmt.Errorf("asking for a session token: %w", unexpected(resp.status))
	}
	tok := string(resp.body)
	if tok == "" {
		return "", errors.New("asking for a session token: empty token")
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < 0x21 || tok[i] > 0x7e {
			return "", errors.New("asking for a session token: the token has a character that is not printable ASCII")
		}
	}
	return tok, nil
}
