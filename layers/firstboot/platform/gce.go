package platform

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// GCEAttribute is the instance attribute that holds a node config on GCE,
// read before user-data. "<key>-encoding: base64" says a value is base64,
// as cloud-init's user-data-encoding does.
const GCEAttribute = "nodebake-node"

const (
	gceAttributesPath = "/computeMetadata/v1/instance/attributes/"
	gceFlavorHeader   = "Metadata-Flavor"
	gceFlavor         = "Google"
	// maxGCEEncoding bounds an encoding attribute's value.
	maxGCEEncoding = 64
)

// ErrNotGCE: the answer lacks the Metadata-Flavor: Google header, so it is
// not from GCE's metadata server.
var ErrNotGCE = errors.New("the answer lacks the header Metadata-Flavor: Google (not the GCE metadata server)")

// readGCEAttribute reads an instance attribute and decodes it as its
// "-encoding" attribute says.
func readGCEAttribute(key string) func(context.Context, *env) ([]byte, string, error) {
	return func(ctx context.Context, e *env) ([]byte, string, error) {
		base := e.endpoint(e.opts.Endpoints.GCE, defaultGCE) + gceAttributesPath
		value, found, err := gceGet(ctx, e, base+key, encodedLimit(e.opts.MaxSize))
		if err != nil {
			return nil, "", err
		}
		if !found {
			return nil, "", noData("not set (404)")
		}
		enc, found, err := gceGet(ctx, e, base+key+"-encoding", maxGCEEncoding)
		if err != nil {
			return nil, "", fmt.Errorf("reading %s-encoding: %w", key, err)
		}
		b64 := false
		if found {
			switch v := strings.TrimSpace(string(enc)); v {
			case "base64":
				b64 = true
			case "":
			default:
				return nil, "", fmt.Errorf("%s-encoding %q: the only encoding known is base64", key, v)
			}
		}
		data, err := decode(value, b64, e.opts.MaxSize)
		return data, "", err
	}
}

// gceGet reads one metadata value; a 404 is not found.
func gceGet(ctx context.Context, e *env, url string, limit int64) ([]byte, bool, error) {
	resp, err := e.do(ctx, request{
		method: http.MethodGet,
		url:    url,
		header: http.Header{gceFlavorHeader: {gceFlavor}},
		limit:  limit,
	})
	if err != nil {
		return nil, false, err
	}
	if resp.header.Get(gceFlavorHeader) != gceFlavor {
		return nil, false, ErrNotGCE
	}
	switch resp.status {
	case http.StatusOK:
		return resp.body, true, nil
	case http.StatusNotFound:
		return nil, false, nil
	default:
		return nil, false, unexpected(resp.status)
	}
}
