package platform

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// goalStateXML is a goal state as the wireserver sends it (trimmed to
// what cloud-init's tests keep).
const goalStateXML = `<?xml version="1.0" encoding="utf-8"?>
<GoalState xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:noNamespaceSchemaLocation="goalstate10.xsd">
  <Version>2012-11-30</Version>
  <Incarnation>%s</Incarnation>
  <Machine>
    <ExpectedState>Started</ExpectedState>
    <StopRolesDeadlineHint>300000</StopRolesDeadlineHint>
    <LBProbePorts><Port>16001</Port></LBProbePorts>
    <ExpectHealthReport>FALSE</ExpectHealthReport>
  </Machine>
  <Container>
    <ContainerId>%s</ContainerId>
    <RoleInstanceList>
      <RoleInstance>
        <InstanceId>%s</InstanceId>
        <State>Started</State>
        <Configuration>
          <HostingEnvironmentConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=hostingEnvironmentConfig&amp;incarnation=1</HostingEnvironmentConfig>
          <SharedConfig>http://168.63.129.16:80/machine/x?comp=config&amp;type=sharedConfig&amp;incarnation=1</SharedConfig>
        </Configuration>
      </RoleInstance>
    </RoleInstanceList>
  </Container>
</GoalState>
`

// health is the report the wireserver receives.
type health struct {
	XMLName     xml.Name `xml:"Health"`
	Incarnation string   `xml:"GoalStateIncarnation"`
	ContainerID string   `xml:"Container>ContainerId"`
	InstanceID  string   `xml:"Container>RoleInstanceList>Role>InstanceId"`
	State       string   `xml:"Container>RoleInstanceList>Role>Health>State"`
	SubStatus   string   `xml:"Container>RoleInstanceList>Role>Health>Details>SubStatus"`
	Description string   `xml:"Container>RoleInstanceList>Role>Health>Details>Description"`
}

// fakeAzure plays Azure's IMDS (Metadata: true required, else 400; the
// api-version required; userData answered as base64 text) and the
// wireserver (x-ms-version required; the goal state; health reports
// recorded).
type fakeAzure struct {
	mu        sync.Mutex
	userData  string // the base64 text IMDS answers; "" is no userData
	goalState string
	fail      int // 410 Gone this many times first (IMDS being updated)
	reports   []health
	raw       []string
}

func (f *fakeAzure) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail > 0 {
		f.fail--
		http.Error(w, "", http.StatusGone)
		return
	}
	switch {
	case r.URL.Path == "/metadata/instance/compute/userData":
		if r.Header.Get("Metadata") != "true" || r.Header.Get("X-Forwarded-For") != "" {
			http.Error(w, `{"error": "Bad request. Required metadata header not specified"}`, http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("api-version") == "" || r.URL.Query().Get("format") != "text" {
			http.Error(w, `{"error": "Bad request. api-version was not specified"}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, f.userData)
	case r.URL.Path == "/machine/" && r.URL.Query().Get("comp") == "goalstate" && r.Method == http.MethodGet:
		if r.Header.Get("x-ms-version") != "2012-11-30" || r.Header.Get("x-ms-agent-name") == "" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		io.WriteString(w, f.goalState)
	case r.URL.Path == "/machine" && r.URL.Query().Get("comp") == "health" && r.Method == http.MethodPost:
		if r.Header.Get("x-ms-version") != "2012-11-30" || r.Header.Get("Content-Type") != "text/xml; charset=utf-8" {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		var h health
		if err := xml.Unmarshal(b, &h); err != nil {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		f.reports, f.raw = append(f.reports, h), append(f.raw, string(b))
	default:
		http.NotFound(w, r)
	}
}

func TestAzureUserData(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString
	tests := []struct {
		name string
		az   *fakeAzure
		want []byte
		err  error
		msg  string
	}{
		{"userData", &fakeAzure{userData: b64(nodeConfig)}, nodeConfig, nil, ""},
		{"gzip userData", &fakeAzure{userData: b64(gz(t, nodeConfig))}, nodeConfig, nil, ""},
		{"410 then success", &fakeAzure{userData: b64(nodeConfig), fail: 2}, nodeConfig, nil, ""},
		{"no userData", &fakeAzure{}, nil, ErrNoData, "azure: no node config from any source (azure-imds userData: userData is empty)"},
		{"bad base64", &fakeAzure{userData: secret}, nil, nil, "azure-imds userData: decoding base64"},
		{"gzip bomb", &fakeAzure{userData: b64(bomb(t, 4<<20))}, nil, nil, "more than 65536"},
		{"oversized", &fakeAzure{userData: strings.Repeat("A", 200_000)}, nil, nil, "answer of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.az)
			defer srv.Close()
			m := newMachine(t, dmiAzure, "")
			var log syncBuffer
			d, c, err := Lookup(context.Background(), m.options(srv.URL, &log))
			if d.Platform != Azure {
				t.Fatalf("platform %s", d.Platform)
			}
			noSecret(t, "the log", log.String())
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || c.Source != "azure-imds userData" {
					t.Fatalf("Lookup = %q from %q, %v", c.Data, c.Source, err)
				}
				return
			}
			noSecret(t, "the error", err.Error())
			if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Lookup: %v; want %q", err, tt.msg)
			}
		})
	}
}

func TestAzureReport(t *testing.T) {
	const container, instance = "5f3a1c2e-8b7d-4c6a-9e0f-1a2b3c4d5e6f", "a1b2c3d4e5f6.worker01"
	az := &fakeAzure{goalState: fmt.Sprintf(goalStateXML, "3", container, instance)}
	srv := httptest.NewServer(az)
	defer srv.Close()
	m := newMachine(t, dmiAzure, "")
	var log syncBuffer
	opts := m.options(srv.URL, &log)
	d, err := Detect(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Report(context.Background(), nil); err != nil {
		t.Fatalf("Report(ready): %v", err)
	}
	failure := errors.New(`kubernetes.nodeCert: not signed by the CA in kubernetes.caCert (issuer "CN=<other> & co")` + strings.Repeat("é", 600))
	if err := d.Report(context.Background(), failure); err != nil {
		t.Fatalf("Report(failure): %v", err)
	}
	az.mu.Lock()
	defer az.mu.Unlock()
	if len(az.reports) != 2 {
		t.Fatalf("%d reports, want 2", len(az.reports))
	}
	ready := health{XMLName: xml.Name{Local: "Health"}, Incarnation: "3", ContainerID: container, InstanceID: instance, State: "Ready"}
	if az.reports[0] != ready {
		t.Errorf("ready report %+v\nwant %+v", az.reports[0], ready)
	}
	got := az.reports[1]
	if got.State != "NotReady" || got.SubStatus != "ProvisioningFailed" || got.InstanceID != instance ||
		!strings.HasPrefix(got.Description, `kubernetes.nodeCert: not signed by the CA in kubernetes.caCert (issuer "CN=<other> & co")`) ||
		len([]rune(got.Description)) != 512 {
		t.Errorf("failure report %+v (%d characters)", got, len([]rune(got.Description)))
	}
	if strings.Contains(az.raw[0], "Details") {
		t.Errorf("the ready report has details:\n%s", az.raw[0])
	}
	if !strings.Contains(log.String(), "reported Ready") {
		t.Errorf("log: %q", log.String())
	}
}

func TestAzureReportBadGoalState(t *testing.T) {
	deep := strings.Repeat("<a>", 100) + strings.Repeat("</a>", 100)
	tests := []struct{ name, doc, msg string }{
		{"not XML", "<<<", "parsing XML"},
		{"other root", "<Health></Health>", "not one GoalState"},
		{"no incarnation", fmt.Sprintf(goalStateXML, "", "c", "i"), "Incarnation"},
		{"incarnation not a number", fmt.Sprintf(goalStateXML, "1; rm", "c", "i"), "Incarnation"},
		{"no container", fmt.Sprintf(goalStateXML, "1", "", "i"), "ContainerId is missing"},
		{"instance with markup", fmt.Sprintf(goalStateXML, "1", "c", "i&lt;x&gt;"), "InstanceId"},
		{"too deep", "<GoalState>" + deep + "</GoalState>", "nested deeper than 16"},
		{"long value", fmt.Sprintf(goalStateXML, "1", strings.Repeat("c", 300), "i"), "longer than 256"},
		{"doctype", `<!DOCTYPE GoalState [<!ENTITY x "y">]><GoalState/>`, "directives"},
		{"too large", "<GoalState>" + strings.Repeat(" ", 70_000) + "</GoalState>", "answer of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			az := &fakeAzure{goalState: tt.doc}
			srv := httptest.NewServer(az)
			defer srv.Close()
			m := newMachine(t, dmiAzure, "")
			opts := m.options(srv.URL, nil)
			d, _ := Detect(opts)
			err := d.Report(context.Background(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "azure ready report: ") {
				t.Errorf("Report: %v; want an error with %q", err, tt.msg)
			}
			if len(az.reports) != 0 {
				t.Errorf("a health report was sent")
			}
		})
	}
}

// TestAzureWireServerFromLease: without an endpoint option the wireserver
// is DHCP option 245 from systemd-networkd's lease, else 168.63.129.16.
func TestAzureWireServerFromLease(t *testing.T) {
	m := newMachine(t, dmiAzure, "")
	e := &env{opts: Options{Root: m.root}}
	if got := e.wireServer(); got != "http://168.63.129.16" {
		t.Errorf("without a lease: %s", got)
	}
	m.write(LeasesDir+"/2", "# This is private data. Do not parse.\nADDRESS=10.0.0.4\nOPTION_245=zz\n")
	if got := e.wireServer(); got != "http://168.63.129.16" {
		t.Errorf("bad option: %s", got)
	}
	m.write(LeasesDir+"/3", "ADDRESS=10.0.0.4\nOPTION_245=a83f8111\n")
	if got := e.wireServer(); got != "http://168.63.129.17" {
		t.Errorf("from the lease: %s", got)
	}
}

func BenchmarkReadAzure(b *testing.B) {
	srv := httptest.NewServer(&fakeAzure{userData: base64.StdEncoding.EncodeToString(nodeConfig)})
	defer srv.Close()
	m := newMachine(b, dmiAzure, "")
	opts := m.options(srv.URL, nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReportAzure(b *testing.B) {
	srv := httptest.NewServer(&fakeAzure{goalState: fmt.Sprintf(goalStateXML, "1", "c", "i")})
	defer srv.Close()
	m := newMachine(b, dmiAzure, "")
	opts := m.options(srv.URL, nil)
	d, _ := Detect(opts)
	for b.Loop() {
		if err := d.Report(context.Background(), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzParseGoalState: any document gives a checked goal state or an
// error, never a panic, and a health report that parses back.
func FuzzParseGoalState(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(goalStateXML, "1", "c", "i")))
	f.Add([]byte("<GoalState><Incarnation>1</Incarnation></GoalState>"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		gs, err := parseGoalState(doc)
		if err != nil {
			return
		}
		var h health
		if err := xml.Unmarshal(healthReport(gs, errors.New("x")), &h); err != nil || h.InstanceID != gs.InstanceID {
			t.Fatalf("the health report of %+v does not parse back: %v", gs, err)
		}
	})
}
