package nodeconfig_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testpki"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig/nodeconfigtest"
)

// firstProblem returns the first problem of err, which must be Problems.
func firstProblem(t *testing.T, err error) nodeconfig.Problem {
	t.Helper()
	var probs nodeconfig.Problems
	if !errors.As(err, &probs) || len(probs) == 0 {
		t.Fatalf("got %T %v, want Problems", err, err)
	}
	return probs[0]
}

// TestLoadCorpus refuses every config of the hostile corpus through Load,
// with the first problem naming the expected field. (Sources that are not
// regular files are ReadFile's, tested below.)
func TestLoadCorpus(t *testing.T) {
	p := newPKI(t)
	cases, err := nodeconfigtest.Cases(p.PKI)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.Source != nodeconfigtest.RegularFile {
			continue
		}
		t.Run(c.Category+"/"+c.Name, func(t *testing.T) {
			cfg, err := nodeconfig.Load(c.Config, facts(), testpki.Now())
			if err == nil {
				t.Fatalf("accepted: %+v", cfg)
			}
			first := firstProblem(t, err)
			msg := c.Message
			if strings.HasPrefix(msg, "larger than the limit") {
				msg = "larger than the limit of 1048576 bytes" // Load says how large it is
			}
			if !strings.HasPrefix(first.Field, c.Field) || !strings.Contains(first.Message, msg) {
				t.Errorf("first problem %q\nwant field %s, message containing %q\nall: %v", first, c.Field, msg, err)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	p := newPKI(t)
	valid := nodeconfigtest.YAML(p.Config())
	dir := t.TempDir()
	for _, k := range []nodeconfigtest.SourceKind{nodeconfigtest.RegularFile, nodeconfigtest.NamedPipe, nodeconfigtest.Directory,
		nodeconfigtest.SymlinkToPipe, nodeconfigtest.CharDevice} {
		t.Run(k.String(), func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(k.String(), " ", "-"))
			if err := nodeconfigtest.Place(path, nodeconfigtest.Case{Config: valid, Source: k}); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			var data []byte
			var err error
			go func() {
				defer close(done)
				data, err = nodeconfig.ReadFile(path)
			}()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("ReadFile blocked") // not a timing assertion: a hang
			}
			var nr *nodeconfig.NotRegularError
			switch {
			case k == nodeconfigtest.RegularFile:
				if err != nil || !bytes.Equal(data, valid) {
					t.Errorf("got %d bytes, %v", len(data), err)
				}
			case !errors.As(err, &nr):
				t.Errorf("got %v, want a NotRegularError", err)
			case strings.Contains(err.Error(), dir):
				t.Errorf("the error %q names the path: the caller does", err)
			}
		})
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, nodeconfig.MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	var tl *nodeconfig.TooLargeError
	if _, err := nodeconfig.ReadFile(big); !errors.As(err, &tl) || tl.Limit != nodeconfig.MaxSize {
		t.Errorf("a file of MaxSize+1 bytes: %v", err)
	}
	if err := os.Truncate(big, nodeconfig.MaxSize); err != nil {
		t.Fatal(err)
	}
	if b, err := nodeconfig.ReadFile(big); err != nil || len(b) != nodeconfig.MaxSize {
		t.Errorf("a file of MaxSize bytes: %d, %v", len(b), err)
	}
	// /proc files report size 0: the limit holds when reading.
	if b, err := nodeconfig.ReadRegularFile("/proc/self/status", 10); !errors.As(err, &tl) {
		t.Errorf("/proc/self/status with a limit of 10: %d bytes, %v", len(b), err)
	}
	if _, err := nodeconfig.ReadFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), dir) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := nodeconfig.Read(bytes.NewReader(make([]byte, nodeconfig.MaxSize+1))); !errors.As(err, &tl) {
		t.Errorf("Read of MaxSize+1 bytes: %v", err)
	}
}

func TestParseWireGuardKey(t *testing.T) {
	good := testpki.WireGuardKey(0x22)
	tests := []struct{ in, want string }{
		{good, ""},
		{good[:43], "43 characters"},
		{good + "\n", "45 characters"},
		{good[:20] + "\n" + good[21:], `character '\n' at position 21`},
		{good[:20] + "\r" + good[21:], `character '\r' at position 21`},
		{" " + good[1:], `character ' ' at position 1`},
		{good[:5] + "-" + good[6:], `character '-' at position 6`},
		{good[:43] + "A", "must end in '='"},
		{good[:42] + "J=", "not canonical base64"},
		{good[:42] + "==", "character '=' at position 43"},
	}
	for _, tt := range tests {
		k, err := nodeconfig.ParseWireGuardKey(tt.in)
		switch {
		case tt.want == "" && (err != nil || k.String() != tt.in):
			t.Errorf("%q: %v", tt.in, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%q: got %v, want %q", tt.in, err, tt.want)
		}
	}
}

// TestLowOrderPoints checks the list of refused public keys against
// crypto/ecdh, which refuses an all-zero X25519 result: every listed point
// gives one, random keys do not.
func TestLowOrderPoints(t *testing.T) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	lowOrder := func(k nodeconfig.WireGuardKey) bool {
		pub, err := ecdh.X25519().NewPublicKey(k[:])
		if err != nil {
			t.Fatal(err)
		}
		_, err = priv.ECDH(pub)
		return err != nil
	}
	p := func(hexLE string) nodeconfig.WireGuardKey {
		var k nodeconfig.WireGuardKey
		b, err := hex.DecodeString(hexLE)
		if err != nil || len(b) != 32 {
			t.Fatalf("%s: %v", hexLE, err)
		}
		copy(k[:], b)
		return k
	}
	refused := map[string]nodeconfig.WireGuardKey{
		"0":        {},
		"1":        {1},
		"order 8":  p("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
		"order 8'": p("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
		"p-1":      p("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
	}
	for name, k := range refused {
		if !lowOrder(k) {
			t.Errorf("%s: crypto/ecdh does not find it of low order", name)
		}
		if err := k.CheckPublicKey(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for name, k := range map[string]nodeconfig.WireGuardKey{
		"p":        p("edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"p+1":      p("eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),
		"top bit":  p("22222222222222222222222222222222222222222222222222222222222222a2"),
		"all ones": p("ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"),
	} {
		if err := k.CheckPublicKey(); err == nil || !strings.Contains(err.Error(), "not a canonical") {
			t.Errorf("%s: got %v, want not canonical", name, err)
		}
	}
	for i := 0; i < 200; i++ {
		other, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		var k nodeconfig.WireGuardKey
		copy(k[:], other.PublicKey().Bytes())
		if err := k.CheckPublicKey(); err != nil || lowOrder(k) {
			t.Fatalf("random public key %s: %v", k, err)
		}
	}
}

func TestProblemsInDocumentOrder(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	cfg.Kubernetes.PodCIDR = ""                       // required with the bridge network; absent
	cfg.Kubernetes.APIServer = "http://10.8.0.1:6443" // line 17
	cfg.WireGuard.ListenPort = 70000                  // line 7
	doc := nodeconfigtest.YAML(cfg)
	_, err := nodeconfig.Load(doc, facts(), testpki.Now())
	var got []string
	for _, pr := range err.(nodeconfig.Problems) {
		got = append(got, fmt.Sprintf("%s@%d", pr.Field, pr.Line))
	}
	want := []string{"wireguard.listenPort@7", "kubernetes.apiServer@17", "kubernetes.podCIDR@0"}
	if !slices.Equal(got, want) {
		t.Errorf("problems %q\nwant %q", got, want)
	}
}

func TestItemLines(t *testing.T) {
	doc := "wireguard:\n  peers:\n    - publicKey: x\n      allowedIPs:\n        - 10.9.0.0/24\n        - 10.9.1.1/24\n" +
		"    - allowedIPs: [10.7.0.0/16, 10.7.0.0/24]\n"
	_, err := nodeconfig.Load([]byte(doc), facts(), testpki.Now())
	lines := map[string]int{}
	for _, p := range err.(nodeconfig.Problems) {
		lines[p.Field] = p.Line
	}
	for field, want := range map[string]int{
		"wireguard.peers[0].publicKey":     3,
		"wireguard.peers[0].allowedIPs[1]": 6, // a block sequence item: its own line
		"wireguard.peers[1].allowedIPs[1]": 7, // a flow sequence item: the sequence's
		"wireguard.peers[1].publicKey":     0, // absent
	} {
		if got, ok := lines[field]; !ok || got != want {
			t.Errorf("%s: line %d (reported %v), want %d", field, got, ok, want)
		}
	}
}

func TestMaxProblems(t *testing.T) {
	p := newPKI(t)
	cfg := p.config()
	for i := 0; i < 1000; i++ {
		cfg.WireGuard.Peers[0].AllowedIPs = append(cfg.WireGuard.Peers[0].AllowedIPs, fmt.Sprintf("10.9.%d.1/24", i%250))
	}
	cfg.WireGuard.ListenPort = 70000 // comes first in the document
	_, err := nodeconfig.Load(nodeconfigtest.YAML(cfg), facts(), testpki.Now())
	probs := err.(nodeconfig.Problems)
	if len(probs) != nodeconfig.MaxProblems || probs[0].Field != "wireguard.listenPort" ||
		probs[len(probs)-1].Message != "902 more problems not shown" {
		t.Errorf("%d problems, first %v, last %v", len(probs), probs[0], probs[len(probs)-1])
	}
}

func TestProblemIsOneLine(t *testing.T) {
	_, err := nodeconfig.Load([]byte(`{"wireguard": {"a\nb": 1}}`), facts(), testpki.Now())
	if got := firstProblem(t, err).String(); got != `wireguard.a\nb: unknown field (line 1)` {
		t.Errorf("got %q", got)
	}
}

func TestKubeconfigRoundTrip(t *testing.T) {
	p := newPKI(t)
	k := nodeconfig.NewKubeconfig("https://10.8.0.1:6443", p.ca.CertPEM, "system:kube-proxy", p.proxyCert, p.proxyKey)
	y, err := k.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range [][]byte{y, js} {
		back, err := nodeconfig.ParseKubeconfig(string(doc), "kubeconfig")
		if err != nil || !reflect.DeepEqual(back, k) {
			t.Errorf("round trip of\n%s\n%+v, %v", doc, back, err)
		}
	}
}

// FuzzLoad generates hostile documents around the valid config: nesting in
// YAML and JSON at any depth, long runs of a fragment, fragments spliced in
// anywhere. Load must refuse with problems that name a field, never crash,
// and keep to the bounds; what it accepts must be valid.
func FuzzLoad(f *testing.F) {
	p := newPKI(f)
	valid := string(nodeconfigtest.YAML(p.Config()))
	f.Add(uint32(0), uint32(0), uint8(0), "")
	f.Add(uint32(40), uint32(100), uint8(1), "[")
	f.Add(uint32(1<<20), uint32(200), uint8(2), "- ")
	f.Add(uint32(5000), uint32(400), uint8(3), "a: ")
	f.Add(uint32(1), uint32(1<<20), uint8(4), "10.9.0.0/16, ")
	f.Add(uint32(100), uint32(600), uint8(5), "\"\\u0000")
	f.Add(uint32(50), uint32(0), uint8(6), "{\"a\":")
	f.Fuzz(func(t *testing.T, n, at uint32, shape uint8, frag string) {
		n %= nodeconfig.MaxSize + 1
		if len(frag) > 0 && int(n)*len(frag) > 2*nodeconfig.MaxSize {
			n = uint32(2 * nodeconfig.MaxSize / len(frag))
		}
		run := strings.Repeat(frag, int(n))
		var doc string
		switch shape % 7 {
		case 0: // the fragment spliced in
			i := int(at) % (len(valid) + 1)
			doc = valid[:i] + run + valid[i:]
		case 1: // JSON nesting
			doc = `{"apiVersion": "nodebake.io/v1alpha1", "wireguard": {"peers": ` + strings.Repeat("[", int(n)) + strings.Repeat("]", int(n)) + "}}"
		case 2: // compact sequences
			doc = strings.Replace(valid, "  peers:\n", "  peers:\n    - "+strings.Repeat("- ", int(n))+frag+"\n", 1)
		case 3: // indentation
			var b strings.Builder
			for i := 0; i < int(n) && b.Len() <= nodeconfig.MaxSize; i++ {
				b.WriteString(strings.Repeat(" ", i) + frag + "\n")
			}
			doc = b.String()
		case 4: // a long flow sequence of allowed IPs
			doc = strings.Replace(valid, "[10.8.0.205/32, ", "["+run, 1)
		case 5: // a long value
			doc = strings.Replace(valid, "nodeName: worker01", "nodeName: \""+run+"\"", 1)
		case 6: // a kubeconfig of the fragment
			cfg := p.Config()
			cfg.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: run + strings.Repeat("]", int(at)%64)}
			b, err := nodeconfig.Marshal(cfg)
			if err != nil {
				return // not a string YAML holds (invalid UTF-8)
			}
			doc = string(b)
		}
		cfg, err := nodeconfig.Load([]byte(doc), facts(), testpki.Now())
		if err == nil {
			if verr := nodeconfig.Validate(cfg, facts(), testpki.Now()); verr != nil {
				t.Fatalf("Load accepted what Validate refuses: %v", verr)
			}
			return
		}
		var probs nodeconfig.Problems
		if !errors.As(err, &probs) || len(probs) == 0 || len(probs) > nodeconfig.MaxProblems {
			t.Fatalf("error %T with %d problems: %v", err, len(probs), err)
		}
		if probs[0].Field == "" || probs[0].Message == "" {
			t.Fatalf("the first problem names no field: %+v", probs[0])
		}
		if line := probs[0].String(); strings.ContainsAny(line, "\n\r") {
			t.Fatalf("the console line %q is not one line", line)
		}
		if len(doc) > nodeconfig.MaxSize && probs[0].Field != "config" {
			t.Fatalf("a document of %d bytes: %v", len(doc), probs[0])
		}
	})
}

// FuzzWireGuardKey checks the key parser against an independent statement
// of what a canonical key is: 44 characters that the padded standard
// base64 alphabet re-encodes identically from 32 bytes.
func FuzzWireGuardKey(f *testing.F) {
	good := testpki.WireGuardKey(0x22)
	for _, s := range []string{good, good[:42] + "J=", good[:20] + "\n" + good[20:], "", strings.Repeat("A", 43) + "=",
		base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)), base64.RawStdEncoding.EncodeToString(make([]byte, 32))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := nodeconfig.ParseWireGuardKey(s)
		raw, derr := base64.StdEncoding.DecodeString(s)
		canonical := derr == nil && len(raw) == 32 && base64.StdEncoding.EncodeToString(raw) == s
		if (err == nil) != canonical {
			t.Fatalf("%q: parse error %v, canonical %v", s, err, canonical)
		}
		if err == nil && (!bytes.Equal(k[:], raw) || k.String() != s) {
			t.Fatalf("%q: decoded to %x", s, k)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\n\r") {
			t.Fatalf("the message %q breaks the console line", err)
		}
	})
}

// FuzzCertificate flips bytes of the node certificate and rewrites its
// subject, keys and usages from the fuzzer's input: Load must never crash,
// and whatever it accepts must satisfy every identity rule, checked here
// independently of the validator.
func FuzzCertificate(f *testing.F) {
	p := newPKI(f)
	block, _ := pem.Decode([]byte(p.nodeCert))
	f.Add(uint16(0), uint8(0), uint8(0), "system:nodes")
	f.Add(uint16(200), uint8(0xff), uint8(1), "system:masters")
	f.Add(uint16(17), uint8(1), uint8(2), "")
	f.Add(uint16(0), uint8(0), uint8(3), "system:nodes")
	f.Add(uint16(0), uint8(0), uint8(4), "system:nodes")
	f.Add(uint16(0), uint8(0), uint8(5), "system:nodes")
	f.Fuzz(func(t *testing.T, at uint16, xor uint8, variant uint8, org string) {
		cfg := p.config()
		der := bytes.Clone(block.Bytes)
		switch variant % 6 {
		case 0: // a flipped byte
			der[int(at)%len(der)] ^= xor
		default: // a newly issued variant
			l := testpki.Leaf{CommonName: "system:node:worker01", Organization: []string{org}, Seed: 2}
			switch variant % 6 {
			case 2:
				l.Edit = testpki.MakeCA
			case 3:
				l.Edit = func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsage(xor % 14)} }
			case 4:
				l.Edit = func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsage(at) & 0x1ff }
			case 5:
				l.PublicKey = testpki.FakeRSAPublicKey(1024 + int(at)%16384)
			}
			c, _, err := p.ca.Issue(l)
			if err != nil {
				return
			}
			b, _ := pem.Decode([]byte(c))
			der = b.Bytes
		}
		cfg.Kubernetes.NodeCert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
		_, err := nodeconfig.Load(nodeconfigtest.YAML(cfg), facts(), testpki.Now())
		if err != nil {
			if first := firstProblem(t, err); first.Field == "" {
				t.Fatalf("no field: %v", err)
			}
			return
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("accepted a certificate Go cannot parse: %v", err)
		}
		switch {
		case c.Subject.CommonName != "system:node:worker01" || !slices.Equal(c.Subject.Organization, []string{"system:nodes"}):
			t.Fatalf("accepted subject %v", c.Subject)
		case c.IsCA || c.KeyUsage&x509.KeyUsageCertSign != 0:
			t.Fatal("accepted a CA")
		case len(c.ExtKeyUsage) > 0 && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny):
			t.Fatalf("accepted extended key usages %v", c.ExtKeyUsage)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: poolOf(p.ca.Cert), CurrentTime: testpki.Now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Fatalf("accepted a certificate that does not verify: %v", err)
		}
	})
}

func poolOf(c *x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c)
	return p
}

// FuzzKubeconfig feeds kube-proxy kubeconfigs: anything accepted has
// exactly the cluster's CA and kube-proxy's own certificate.
func FuzzKubeconfig(f *testing.F) {
	p := newPKI(f)
	good, err := nodeconfig.NewKubeconfig("https://10.8.0.1:6443", p.ca.CertPEM, "system:kube-proxy", p.proxyCert, p.proxyKey).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(good))
	f.Add(strings.Replace(string(good), "https", "http", 1))
	f.Add(`{"kind": "Config", "apiVersion": "v1", "clusters": [{"name": "a", "cluster": {"server": "https://x"}}]}`)
	f.Add("kind: Config\npreferences: {}\n")
	f.Fuzz(func(t *testing.T, kc string) {
		cfg := p.config()
		cfg.Kubernetes.KubeProxy = nodeconfig.KubeProxy{Kubeconfig: kc}
		doc, err := nodeconfig.Marshal(cfg)
		if err != nil {
			return // not a string YAML holds (invalid UTF-8)
		}
		if _, err := nodeconfig.Load(doc, facts(), testpki.Now()); err != nil {
			return
		}
		k, err := nodeconfig.ParseKubeconfig(kc, "kubeconfig")
		if err != nil || len(k.Users) != 1 || len(k.Clusters) != 1 {
			t.Fatalf("accepted %q (%v)", kc, err)
		}
		cert, _ := base64.StdEncoding.DecodeString(k.Users[0].User.ClientCertificateData)
		ca, _ := base64.StdEncoding.DecodeString(k.Clusters[0].Cluster.CertificateAuthorityData)
		if strings.TrimSpace(string(cert)) != strings.TrimSpace(p.proxyCert) || strings.TrimSpace(string(ca)) != strings.TrimSpace(p.ca.CertPEM) ||
			!strings.HasPrefix(k.Clusters[0].Cluster.Server, "https://") {
			t.Fatalf("accepted other credentials: %q", kc)
		}
	})
}
