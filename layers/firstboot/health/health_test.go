package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// node is a fake node: a root with first boot's files, a kubelet whose
// state the test sets, and its health endpoint.
type node struct {
	root string
	mu   sync.Mutex
	unit Unit
	code int    // what /healthz answers
	body string // and with
	srv  *httptest.Server
}

func newNode(t *testing.T, ready bool) *node {
	t.Helper()
	n := &node{root: t.TempDir(), unit: Unit{ActiveState: "active"}, code: 200, body: "ok"}
	n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.mu.Lock()
		defer n.mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(n.code)
		fmt.Fprint(w, n.body)
	}))
	t.Cleanup(n.srv.Close)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(n.srv.URL, "http://"))
	n.write(t, firstboot.KubeletConfigPath, fmt.Sprintf(`{"kind":"KubeletConfiguration","healthzBindAddress":%q,"healthzPort":%s}`, host, port))
	if ready {
		n.write(t, firstboot.ReadyPath, "")
	}
	return n
}

func (n *node) write(t *testing.T, p, content string) {
	t.Helper()
	full := filepath.Join(n.root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func (n *node) set(f func(*node)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	f(n)
}

func (n *node) opts() Options {
	return Options{
		Root: n.root,
		Unit: func(_ context.Context, name string) (Unit, error) {
			if name != KubeletUnit {
				return Unit{}, fmt.Errorf("unexpected unit %s", name)
			}
			n.mu.Lock()
			defer n.mu.Unlock()
			return n.unit, nil
		},
		Timeout:  time.Second,
		Interval: 10 * time.Millisecond,
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		name   string
		ready  bool
		change func(*node)
		// later changes the node after the first looks.
		later func(*node)
		want  string // "" for healthy, else a fragment of the reason
		fast  bool   // the verdict comes before the timeout
	}{
		{name: "healthy", ready: true, fast: true},
		{name: "no node config", ready: false, want: "node config was not applied", fast: true},
		{name: "kubelet crash-looping", ready: true, change: func(n *node) { n.unit = Unit{ActiveState: "activating", NRestarts: 3} },
			want: "restarted 3 times", fast: true},
		{name: "kubelet failed", ready: true, change: func(n *node) { n.unit = Unit{ActiveState: "failed"} }, want: "kubelet.service is failed"},
		{name: "kubelet inactive", ready: true, change: func(n *node) { n.unit = Unit{ActiveState: "inactive"} }, want: "inactive"},
		{name: "healthz failing", ready: true, change: func(n *node) { n.code, n.body = 500, "[-]syncloop failed" }, want: "500"},
		{name: "healthz lying", ready: true, change: func(n *node) { n.body = "not ok" }, want: "not ok"},
		{name: "kubelet becomes healthy", ready: true, change: func(n *node) { n.unit = Unit{ActiveState: "activating", NRestarts: 1} },
			later: func(n *node) { n.unit = Unit{ActiveState: "active", NRestarts: 1} }, fast: true},
		{name: "healthy then restarting", ready: true, later: func(n *node) { n.unit = Unit{ActiveState: "activating", NRestarts: 5} },
			want: "restarted 5 times", fast: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t, tt.ready)
			if tt.change != nil {
				n.set(tt.change)
			}
			o := n.opts()
			if tt.name == "healthy then restarting" {
				// The first looks find it healthy; the restart comes
				// before enough of them.
				o.Healthy = 1000
			}
			var lines []string
			var mu sync.Mutex
			o.Log = func(s string) { mu.Lock(); lines = append(lines, s); mu.Unlock() }
			if tt.later != nil {
				go func() {
					time.Sleep(100 * time.Millisecond)
					n.set(tt.later)
				}()
			}
			start := time.Now()
			err := Check(context.Background(), o)
			took := time.Since(start)
			var u *Unhealthy
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Check: %v (log %q)", err, lines)
			case tt.want != "" && (!errors.As(err, &u) || !strings.Contains(u.Reason, tt.want)):
				t.Fatalf("Check = %v, want unhealthy: %s (log %q)", err, tt.want, lines)
			}
			if tt.fast && took >= o.Timeout {
				t.Errorf("the verdict took the whole timeout (%s)", took)
			}
			if !tt.fast && took < o.Timeout {
				t.Errorf("gave up after %s, before the timeout", took)
			}
			if len(lines) == 0 {
				t.Error("nothing logged")
			}
		})
	}
}

func TestCheckCancelled(t *testing.T) {
	n := newNode(t, true)
	n.set(func(n *node) { n.unit.ActiveState = "activating" })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var u *Unhealthy
	if err := Check(ctx, n.opts()); !errors.Is(err, context.Canceled) || errors.As(err, &u) {
		t.Errorf("Check with a cancelled context = %v", err)
	}
}

func TestHealthzURL(t *testing.T) {
	root := t.TempDir()
	write := func(s string) {
		p := filepath.Join(root, firstboot.KubeletConfigPath)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(s), 0o644)
	}
	for _, tt := range []struct {
		config, want string
		bad          bool
	}{
		{`{"healthzBindAddress":"10.8.0.203","healthzPort":10248}`, "http://10.8.0.203:10248/healthz", false},
		{`{"healthzBindAddress":"fd00::1"}`, "http://[fd00::1]:10248/healthz", false},
		{`{}`, "http://127.0.0.1:10248/healthz", false},
		{`{"healthzBindAddress":"0.0.0.0","healthzPort":1}`, "http://127.0.0.1:1/healthz", false},
		{`{"healthzPort":0}`, "", false},
		{`{"healthzPort":70000}`, "", true},
		{`{"healthzBindAddress":"evil.example/x?"}`, "", true},
		{`not json`, "", true},
		{`{"healthzBindAddress":"` + strings.Repeat("1", maxConfigSize) + `"}`, "", true},
	} {
		write(tt.config)
		got, err := healthzURL(root)
		if (err != nil) != tt.bad || got != tt.want {
			t.Errorf("healthzURL(%.40q) = %q, %v; want %q (error %v)", tt.config, got, err, tt.want, tt.bad)
		}
	}
}

func TestParseShow(t *testing.T) {
	u, err := ParseShow([]byte("ActiveState=active\nNRestarts=2\n"))
	if err != nil || u != (Unit{ActiveState: "active", NRestarts: 2}) {
		t.Errorf("ParseShow = %+v, %v", u, err)
	}
	for _, bad := range []string{"", "ActiveState=active\n", "ActiveState=active\nNRestarts=-1\n", "ActiveState=active\nNRestarts=x\n",
		strings.Repeat("ActiveState=active\n", 1000) + "NRestarts=" + strconv.Itoa(1)} {
		if _, err := ParseShow([]byte(bad)); err == nil {
			t.Errorf("ParseShow(%.40q) succeeded", bad)
		}
	}
}
