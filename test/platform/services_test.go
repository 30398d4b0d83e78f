package platform

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/test/netlab"
)

// The test servers that play the platforms' services at their real
// addresses inside a network lab. EC2's is AWS's own
// amazon-ec2-metadata-mock (netlab's ServeEC2Metadata); GCE, Azure and OpenStack have no such double,
// so these follow the protocols as platforms.md records them (headers
// required, headers answered, encodings).

// recorder records the requests a server saw, as "METHOD PATH".
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) add(req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, req.Method+" "+req.URL.RequestURI())
}

func (r *recorder) requests() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

// gceMetadata plays GCE's metadata server: every request must carry
// Metadata-Flavor: Google and every answer does; attrs are the instance
// attributes.
type gceMetadata struct {
	recorder
	attrs map[string]string
}

func (g *gceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.add(r)
	w.Header().Set("Metadata-Flavor", "Google")
	if r.Header.Get("Metadata-Flavor") != "Google" {
		http.Error(w, "Missing Metadata-Flavor:Google header.", http.StatusForbidden)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, "/computeMetadata/v1/instance/attributes/")
	v, found := g.attrs[key]
	if !ok || !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/text")
	io.WriteString(w, v)
}

// azureIMDS plays Azure's instance metadata service: Metadata: true is
// required, userData is answered as base64 text. stall makes it accept
// requests and never answer.
type azureIMDS struct {
	recorder
	userData []byte
	stall    bool
}

func (a *azureIMDS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.add(r)
	if a.stall {
		<-r.Context().Done()
		return
	}
	if r.Header.Get("Metadata") != "true" || r.URL.Query().Get("api-version") == "" {
		http.Error(w, `{"error": "Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
		return
	}
	if r.URL.Path != "/metadata/instance/compute/userData" || r.URL.Query().Get("format") != "text" {
		http.NotFound(w, r)
		return
	}
	io.WriteString(w, base64.StdEncoding.EncodeToString(a.userData))
}

// wireServer plays Azure's wireserver: the goal state, and the health
// reports it receives.
type wireServer struct {
	recorder
	mu      sync.Mutex
	reports []health
}

// health is a health report as the wireserver reads it.
type health struct {
	Incarnation string `xml:"GoalStateIncarnation"`
	ContainerID string `xml:"Container>ContainerId"`
	InstanceID  string `xml:"Container>RoleInstanceList>Role>InstanceId"`
	State       string `xml:"Container>RoleInstanceList>Role>Health>State"`
	SubStatus   string `xml:"Container>RoleInstanceList>Role>Health>Details>SubStatus"`
	Description string `xml:"Container>RoleInstanceList>Role>Health>Details>Description"`
	raw         string
}

const (
	azureContainerID = "c6d5e4f3-0000-4000-8000-0000000000a1"
	azureInstanceID  = "896a3e5b-0000-4000-8000-0000000000b2.worker-azure"
)

func (ws *wireServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws.add(r)
	if r.Header.Get("x-ms-version") != "2012-11-30" || r.Header.Get("x-ms-agent-name") == "" {
		http.Error(w, "", http.StatusBadRequest)
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/machine/" && r.URL.Query().Get("comp") == "goalstate":
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>3</Incarnation>
  <Machine><ExpectedState>Started</ExpectedState></Machine>
  <Container>
    <ContainerId>%s</ContainerId>
    <RoleInstanceList><RoleInstance><InstanceId>%s</InstanceId><State>Started</State></RoleInstance></RoleInstanceList>
  </Container>
</GoalState>
`, azureContainerID, azureInstanceID)
	case r.Method == http.MethodPost && r.URL.Path == "/machine" && r.URL.Query().Get("comp") == "health":
		if r.Header.Get("Content-Type") != "text/xml; charset=utf-8" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var h health
		if err := xml.Unmarshal(b, &h); err != nil {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		h.raw = string(b)
		ws.mu.Lock()
		ws.reports = append(ws.reports, h)
		ws.mu.Unlock()
	default:
		http.NotFound(w, r)
	}
}

func (ws *wireServer) health() []health {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	return append([]health(nil), ws.reports...)
}

// openStackMetadata plays the OpenStack metadata service's user data.
type openStackMetadata struct {
	recorder
	userData []byte
}

func (o *openStackMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.add(r)
	if r.URL.Path != "/openstack/latest/user_data" || o.userData == nil {
		http.NotFound(w, r)
		return
	}
	w.Write(o.userData)
}

// serveLine listens on addr (TCP) in the lab and answers every connection
// with one line: a stand-in for a DNS resolver's port, to see whether a
// pod's connection gets through.
func serveLine(t *testing.T, lab *netlab.Lab, addr, line string) {
	t.Helper()
	ln, err := lab.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			// The request first (up to its blank line), then the answer.
			br := bufio.NewReader(io.LimitReader(c, 4096))
			for {
				l, err := br.ReadString('\n')
				if err != nil || strings.TrimSpace(l) == "" {
					break
				}
			}
			io.WriteString(c, line+"\r\n")
			c.Close()
		}
	}()
}

// gzipped returns b gzip-compressed.
func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
