package firstboot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testimage"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/platform"
)

// fakeCloud plays the EC2 (IMDSv2), GCE (the instance attribute),
// OpenStack (user_data) and Azure (IMDS and wireserver) services at one
// address, for Run's wiring of the platform sources. The
// services' own protocols are tested in package platform against richer
// fakes, and against the real amazon-ec2-metadata-mock in test/platform;
// the whole path under QEMU in test/platform's boots.
type fakeCloud struct {
	mu       sync.Mutex
	userData []byte // served as is (EC2) or base64 (Azure)
	down     bool   // answer 503 to everything
	requests []string
	health   []string // the health reports' bodies
}

func (f *fakeCloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if f.down {
		http.Error(w, "", http.StatusServiceUnavailable)
		return
	}
	switch {
	case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
		io.WriteString(w, "token-1")
	case r.URL.Path == "/latest/user-data":
		if r.Header.Get("X-aws-ec2-metadata-token") != "token-1" {
			http.Error(w, "", http.StatusUnauthorized)
			return
		}
		w.Write(f.userData)
	case r.URL.Path == "/computeMetadata/v1/instance/attributes/nodebake-node" && r.Header.Get("Metadata-Flavor") == "Google":
		w.Header().Set("Metadata-Flavor", "Google")
		w.Write(f.userData)
	case strings.HasPrefix(r.URL.Path, "/computeMetadata/"):
		w.Header().Set("Metadata-Flavor", "Google")
		http.NotFound(w, r)
	case r.URL.Path == "/openstack/latest/user_data":
		w.Write(f.userData)
	case r.URL.Path == "/metadata/instance/compute/userData" && r.Header.Get("Metadata") == "true":
		io.WriteString(w, base64.StdEncoding.EncodeToString(f.userData))
	case r.URL.Path == "/machine/" && r.URL.Query().Get("comp") == "goalstate":
		io.WriteString(w, `<?xml version="1.0" encoding="utf-8"?><GoalState><Incarnation>1</Incarnation>`+
			`<Container><ContainerId>c-1</ContainerId><RoleInstanceList><RoleInstance><InstanceId>vm-1</InstanceId>`+
			`</RoleInstance></RoleInstanceList></Container></GoalState>`)
	case r.URL.Path == "/machine" && r.URL.Query().Get("comp") == "health" && r.Method == http.MethodPost:
		b, _ := io.ReadAll(r.Body)
		f.health = append(f.health, string(b))
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeCloud) seen() ([]string, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...), append([]string(nil), f.health...)
}

// cloudMachine makes a root whose firmware reports dmi, served by a fake
// cloud at its metadata addresses, and the options that reach it.
func cloudMachine(t testing.TB, dmi map[string]string, node []byte) (string, *fakeCloud, Options, *bytes.Buffer) {
	t.Helper()
	root := newRoot(t, nil)
	for k, v := range dmi {
		writeFile(t, root, platform.DMIDir+"/"+k, []byte(v+"\n"))
	}
	cloud := &fakeCloud{userData: node}
	srv := httptest.NewServer(cloud)
	t.Cleanup(srv.Close)
	opts := options(root)
	var log bytes.Buffer
	opts.Log = &log
	opts.Platform = platform.Options{
		Endpoints:      platform.Endpoints{EC2: srv.URL, GCE: srv.URL, AzureIMDS: srv.URL, AzureWireServer: srv.URL, OpenStack: srv.URL},
		Timeout:        2 * time.Second,
		AttemptTimeout: 500 * time.Millisecond,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     50 * time.Millisecond,
	}
	return root, cloud, opts, &log
}

var (
	ec2DMI       = map[string]string{"sys_vendor": "Amazon EC2", "board_asset_tag": "i-0123456789abcdef0"}
	azureDMI     = map[string]string{"sys_vendor": "Microsoft Corporation", "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77"}
	gceDMI       = map[string]string{"sys_vendor": "Google", "product_name": "Google Compute Engine"}
	openStackDMI = map[string]string{"sys_vendor": "OpenStack Foundation", "product_name": "OpenStack Nova"}
	qemuDMI      = map[string]string{"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"}
)

// attachDrive attaches the image file as the block device name under
// root, as the kernel shows it in /sys/class/block and /dev.
func attachDrive(t testing.TB, root, name, image string) {
	t.Helper()
	writeFile(t, root, "/sys/class/block/"+name+"/uevent", []byte("MAJOR=11\nMINOR=0\nDEVNAME="+name+"\nDEVTYPE=disk\n"))
	writeFile(t, root, "/sys/class/block/"+name+"/size", []byte("1000\n"))
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(image, filepath.Join(root, "dev", name)); err != nil {
		t.Fatal(err)
	}
}

func readStatus(t *testing.T, root string) Status {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, StatusPath))
	if err != nil {
		t.Fatal(err)
	}
	var st Status
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A node on a platform gets its node config from the platform, and the
// status names the platform, why, and the source.
func TestRunFromPlatform(t *testing.T) {
	p := newPKI(t)
	node := marshal(t, p.config())
	root, cloud, opts, log := cloudMachine(t, ec2DMI, node)
	st, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s", err, log)
	}
	got := readStatus(t, root)
	if !got.OK || got.Source != "ec2-imds user-data" || got.Platform != "ec2" || !strings.Contains(got.PlatformReason, "Amazon EC2") ||
		got.DetectMicros <= 0 || got.NodeName != "worker01" || got.Report != "" || len(got.Files) != len(st.Files) {
		t.Errorf("status %+v", got)
	}
	if _, err := os.Stat(filepath.Join(root, ReadyPath)); err != nil {
		t.Errorf("node-ready: %v", err)
	}
	if reqs, _ := cloud.seen(); strings.Join(reqs, ",") != "PUT /latest/api/token,GET /latest/user-data" {
		t.Errorf("requests %q", reqs)
	}
	if !strings.Contains(log.String(), "platform ec2 (dmi sys_vendor \"Amazon EC2\"): asking ec2-imds user-data within 2s") {
		t.Errorf("log:\n%s", log)
	}
	noConfigIn(t, "the log", log.String(), p)
}

// noConfigIn fails when s holds any of the node config's secrets or
// certificates.
func noConfigIn(t *testing.T, what, s string, p *pki) {
	t.Helper()
	for _, secret := range []string{p.nodeKey, p.proxyKey, p.nodeCert, p.config().WireGuard.PrivateKey} {
		key := strings.TrimSpace(secret)
		if i := strings.Index(key, "\n"); i > 0 { // a PEM: its first line of base64
			key = strings.SplitN(key, "\n", 3)[1]
		}
		if strings.Contains(s, key) {
			t.Errorf("%s holds node config content %q", what, key)
		}
	}
}

// Local sources come first: a node with a credential does not even look
// at the platform (no detection, no request).
func TestRunLocalSourceBeforePlatform(t *testing.T) {
	p := newPKI(t)
	node := marshal(t, p.config())
	root, cloud, opts, _ := cloudMachine(t, ec2DMI, node)
	writeFile(t, root, SystemCredentialsDir+"/"+CredentialName, node)
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	got := readStatus(t, root)
	if got.Source != "credential "+SystemCredentialsDir+"/"+CredentialName || got.Platform != "" || got.DetectMicros != 0 {
		t.Errorf("status %+v", got)
	}
	if reqs, _ := cloud.seen(); len(reqs) != 0 {
		t.Errorf("the platform was asked: %q", reqs)
	}
}

// A platform whose service fails fails the node closed, naming the source,
// within the platform's time limit; node-ready stays absent.
func TestRunPlatformFailsClosed(t *testing.T) {
	p := newPKI(t)
	tests := []struct {
		name     string
		userData []byte
		down     bool
		field    string
		msg      string
	}{
		{name: "service never answers", down: true, field: "source",
			msg: "platform ec2: ec2-imds user-data: asking for a session token: no answer in time: gave up after "},
		{name: "not a node config", userData: []byte("#cloud-config\nusers: []\n"), field: "users", msg: "unknown field"},
		{name: "corrupt gzip", userData: []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 2, 3}, field: "source",
			msg: "platform ec2: ec2-imds user-data: decompressing gzip: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root, cloud, opts, log := cloudMachine(t, ec2DMI, tt.userData)
			cloud.down = tt.down
			start := time.Now()
			_, err := Run(context.Background(), opts)
			if time.Since(start) > opts.Platform.Timeout+2*time.Second {
				t.Errorf("Run took %s, the time limit is %s", time.Since(start), opts.Platform.Timeout)
			}
			probs, ok := err.(nodeconfig.Problems)
			if !ok {
				t.Fatalf("Run: %v, want Problems", err)
			}
			got := readStatus(t, root)
			if got.OK || got.Platform != "ec2" || got.Source != "ec2-imds user-data" || probs[0].Field != tt.field ||
				!strings.HasPrefix(probs[0].Message, tt.msg) || got.Field != tt.field {
				t.Errorf("problem %v, status %+v", probs[0], got)
			}
			if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
				t.Errorf("node-ready: %v", err)
			}
			noConfigIn(t, "the log", log.String(), p)
		})
	}
}

// On Azure the wireserver is told: Ready after a good node config, and
// NotReady/ProvisioningFailed with the first problem (never the node
// config's content) otherwise. The status records it.
func TestRunAzureReport(t *testing.T) {
	p := newPKI(t)
	good := marshal(t, p.config())
	bad := p.config()
	bad.NodeName = "Worker_01"
	for _, tt := range []struct {
		name  string
		node  []byte
		state string
	}{
		{"ready", good, "Ready"},
		{"provisioning failed", marshal(t, bad), "NotReady"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root, cloud, opts, log := cloudMachine(t, azureDMI, tt.node)
			_, err := Run(context.Background(), opts)
			if (err == nil) != (tt.state == "Ready") {
				t.Fatalf("Run: %v", err)
			}
			_, health := cloud.seen()
			if len(health) != 1 {
				t.Fatalf("health reports %q, want one", health)
			}
			var h struct {
				State       string `xml:"Container>RoleInstanceList>Role>Health>State"`
				SubStatus   string `xml:"Container>RoleInstanceList>Role>Health>Details>SubStatus"`
				Description string `xml:"Container>RoleInstanceList>Role>Health>Details>Description"`
			}
			if err := xml.Unmarshal([]byte(health[0]), &h); err != nil {
				t.Fatal(err)
			}
			got := readStatus(t, root)
			if h.State != tt.state || got.Report != tt.state || got.Source != "azure-imds userData" || got.Platform != "azure" {
				t.Errorf("report %+v, status %+v", h, got)
			}
			if tt.state == "NotReady" {
				if want := `nodeName: "Worker_01" is not a DNS-1123 subdomain`; h.SubStatus != "ProvisioningFailed" || !strings.HasPrefix(h.Description, want) {
					t.Errorf("report %+v, want ProvisioningFailed and %q", h, want)
				}
				if _, err := os.Stat(filepath.Join(root, ReadyPath)); !os.IsNotExist(err) {
					t.Errorf("node-ready: %v", err)
				}
			}
			noConfigIn(t, "the health report", health[0], p)
			noConfigIn(t, "the log", log.String(), p)
		})
	}
}

// A report that cannot be sent leaves the node as it is, and says so.
func TestRunAzureReportFails(t *testing.T) {
	p := newPKI(t)
	root, cloud, opts, _ := cloudMachine(t, azureDMI, marshal(t, p.config()))
	wire := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "", http.StatusForbidden) }))
	defer wire.Close()
	opts.Platform.Endpoints.AzureWireServer = wire.URL
	if _, err := Run(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	got := readStatus(t, root)
	if !got.OK || !strings.HasPrefix(got.Report, "Ready not sent: azure ready report: fetching the goal state: unexpected answer 403") {
		t.Errorf("status %+v", got)
	}
	if _, err := os.Stat(filepath.Join(root, ReadyPath)); err != nil {
		t.Errorf("node-ready: %v", err)
	}
	_ = cloud
}

// A machine that is no platform pays for detection only, and the status
// says so when nothing is found.
func TestRunNoPlatform(t *testing.T) {
	root := newRoot(t, nil)
	writeFile(t, root, platform.DMIDir+"/sys_vendor", []byte("QEMU\n"))
	opts := options(root)
	_, err := Run(context.Background(), opts)
	if err == nil {
		t.Fatal("Run succeeded without a node config")
	}
	got := readStatus(t, root)
	if got.Platform != "none" || got.PlatformReason != "no platform matched" || got.DetectMicros <= 0 || got.Field != "source" ||
		!strings.Contains(got.Error, "no platform (no platform matched)") {
		t.Errorf("status %+v", got)
	}
}

// A bad nodebake.platform= fails the node at once, naming it.
func TestRunBadPlatformParam(t *testing.T) {
	root := newRoot(t, nil)
	writeFile(t, root, "/proc/cmdline", []byte("ro nodebake.platform=aws\n"))
	_, err := Run(context.Background(), options(root))
	if err == nil || !strings.Contains(err.Error(), `nodebake.platform="aws": unknown platform`) {
		t.Errorf("Run: %v", err)
	}
}

// BenchmarkDetectNoPlatform is what first boot adds on a machine that is no
// platform and has no local source: reading the command line, the SMBIOS
// strings and the block device labels (here a bare-metal server's DMI and
// no drives).
func BenchmarkDetectNoPlatform(b *testing.B) {
	root := b.TempDir()
	for k, v := range map[string]string{"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R650", "bios_vendor": "Dell Inc.",
		"bios_version": "1.6.5", "chassis_asset_tag": "", "board_vendor": "Dell Inc."} {
		p := filepath.Join(root, platform.DMIDir, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(v+"\n"), 0o444); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		var st Status
		var det platform.Detection
		_, _, err := findConfig(context.Background(), Options{Root: root}, &st, &det)
		if err == nil || st.Platform != "none" {
			b.Fatalf("%v %+v", err, st)
		}
	}
}

func ExampleStatus() {
	st := Status{OK: true, Source: "ec2-imds user-data", NodeName: "worker01", Platform: "ec2",
		PlatformReason: `dmi sys_vendor "Amazon EC2"`, DetectMicros: 210, DurationMicros: 5400}
	b, _ := json.Marshal(st)
	fmt.Println(string(b))
	// Output:
	// {"ok":true,"source":"ec2-imds user-data","nodeName":"worker01","platform":"ec2","platformReason":"dmi sys_vendor \"Amazon EC2\"","detectMicros":210,"durationMicros":5400}
}

// BenchmarkRunFrom is a whole first boot (find, check, write all files)
// natively, per source: the figures the test/platform boots give under
// TCG. Each iteration is a first boot on a fresh root; the services are
// in-process fakes on loopback, the drives images made by the real tools.
func BenchmarkRunFrom(b *testing.B) {
	p := newPKI(b)
	node := marshal(b, p.config())
	configDrive := testimage.ISO(b, "config-2", testimage.Files{"openstack/latest/user_data": node}, "-J", "-r")
	cidata := testimage.ISO(b, "cidata", testimage.Files{"user-data": node, "meta-data": []byte("instance-id: worker01\n")}, "-J", "-r")
	metal := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(node) }))
	defer metal.Close()
	roots := x509.NewCertPool()
	roots.AddCert(metal.Certificate())
	sum := sha256.Sum256(node)
	for _, src := range []struct {
		name   string
		dmi    map[string]string
		source string
		setup  func(root string, opts *Options)
	}{
		{name: "credential", dmi: qemuDMI, source: "credential " + SystemCredentialsDir + "/" + CredentialName, setup: func(root string, _ *Options) {
			writeFile(b, root, SystemCredentialsDir+"/"+CredentialName, node)
		}},
		{name: "ec2", dmi: ec2DMI, source: "ec2-imds user-data"},
		{name: "gce", dmi: gceDMI, source: "gce-metadata nodebake-node"},
		{name: "azure", dmi: azureDMI, source: "azure-imds userData"},
		{name: "openstack-config-2", dmi: openStackDMI, source: "openstack config-2 drive /dev/sr0", setup: func(root string, _ *Options) {
			attachDrive(b, root, "sr0", configDrive)
		}},
		{name: "openstack-metadata", dmi: openStackDMI, source: "openstack-metadata user_data"},
		{name: "nocloud", dmi: qemuDMI, source: "nocloud cidata drive /dev/vdb", setup: func(root string, _ *Options) {
			attachDrive(b, root, "vdb", cidata)
		}},
		{name: "metal", dmi: qemuDMI, source: "metal nodebake.url " + metal.URL + "/worker01.yaml", setup: func(root string, opts *Options) {
			writeFile(b, root, "/proc/cmdline", []byte("ro nodebake.url="+metal.URL+"/worker01.yaml nodebake.sha256="+hex.EncodeToString(sum[:])+"\n"))
			opts.Platform.RootCAs = roots
		}},
	} {
		b.Run(src.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				root, _, opts, log := cloudMachine(b, src.dmi, node)
				if src.setup != nil {
					src.setup(root, &opts)
				}
				b.StartTimer()
				st, err := Run(context.Background(), opts)
				if err != nil || st.Source != src.source {
					b.Fatalf("Run: %v; source %q, want %q\nlog:\n%s", err, st.Source, src.source, log)
				}
			}
		})
	}
}
