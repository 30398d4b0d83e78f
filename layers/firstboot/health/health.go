// Package health decides whether a boot of a new image version is good
// enough to keep: the node's configuration was applied by first boot, and
// kubelet runs and answers its health endpoint, steadily. The image's
// nodebake-healthy.service runs Check (nodebake-firstboot health) before
// boot-complete.target only on a boot that systemd-boot is counting (a new
// version's tries), so that systemd-bless-boot marks the version good only
// when the node is healthy; otherwise the machine reboots and, once the
// tries are used up, systemd-boot boots the previous version again.
//
// It imports only the standard library, like the rest of first boot.
package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot"
)

// Defaults of Options.
const (
	DefaultTimeout     = 10 * time.Minute
	DefaultInterval    = 2 * time.Second
	DefaultMaxRestarts = 3
	DefaultHealthy     = 3
	// KubeletUnit is the unit Check watches.
	KubeletUnit = "kubelet.service"

	maxConfigSize = 1 << 20
	maxBody       = 4 << 10
)

// Unit is what Check needs to know of a systemd unit.
type Unit struct {
	ActiveState string // active, activating, failed, ...
	NRestarts   int    // automatic restarts since boot
}

// Options configure Check. Zero values take the defaults.
type Options struct {
	// Root prefixes every path read (tests); "/" on the machine.
	Root string
	// Unit reports a unit's state; ShowUnit (systemctl show) when nil.
	Unit func(ctx context.Context, name string) (Unit, error)
	// Client fetches the kubelet's health endpoint.
	Client *http.Client
	// Timeout bounds the whole check; Interval is the time between looks.
	Timeout, Interval time.Duration
	// MaxRestarts is how many restarts of kubelet count as a kubelet that
	// cannot run.
	MaxRestarts int
	// Healthy is how many looks in a row must find the node healthy.
	Healthy int
	// Log receives a line each time the state changes; may be nil.
	Log func(string)
}

// Unhealthy is the verdict on a node that is not healthy.
type Unhealthy struct {
	Reason string
}

func (u *Unhealthy) Error() string { return "unhealthy: " + u.Reason }

// Check waits until the node is healthy: first boot applied its node
// config (firstboot.ReadyPath), kubelet is active and its /healthz answers
// "ok", on opts.Healthy looks in a row. It returns an *Unhealthy at once
// when first boot did not apply a config or kubelet keeps restarting, and
// when the timeout passes.
func Check(ctx context.Context, opts Options) error {
	opts.defaults()
	deadline := time.Now().Add(opts.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	good, last := 0, ""
	for {
		status, fatal := look(ctx, opts)
		if ctx.Err() != nil && last != "" {
			// The deadline cut this look short: it saw the deadline, not
			// the node. The verdict names the last look that finished.
			status, fatal = last, false
		}
		if status != last && opts.Log != nil {
			opts.Log(status)
		}
		last = status
		if fatal {
			return &Unhealthy{Reason: status}
		}
		if status == healthyStatus {
			good++
			if good >= opts.Healthy {
				return nil
			}
		} else {
			good = 0
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return &Unhealthy{Reason: fmt.Sprintf("not healthy within %s: %s", opts.Timeout, status)}
			}
			return ctx.Err()
		case <-time.After(opts.Interval):
		}
	}
}

const healthyStatus = "kubelet active, /healthz ok"

func (o *Options) defaults() {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.Unit == nil {
		o.Unit = ShowUnit
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 5 * time.Second}
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.MaxRestarts <= 0 {
		o.MaxRestarts = DefaultMaxRestarts
	}
	if o.Healthy <= 0 {
		o.Healthy = DefaultHealthy
	}
}

// look takes one look: the node's status, and whether it is final.
func look(ctx context.Context, o Options) (status string, fatal bool) {
	if _, err := os.Stat(filepath.Join(o.Root, firstboot.ReadyPath)); err != nil {
		// First boot runs before sysinit.target, long before this: the
		// node config was not applied, and will not be on this boot.
		return fmt.Sprintf("the node config was not applied (%s is missing; see %s)", firstboot.ReadyPath, firstboot.StatusPath), true
	}
	u, err := o.Unit(ctx, KubeletUnit)
	if err != nil {
		return fmt.Sprintf("reading the state of %s: %v", KubeletUnit, err), false
	}
	if u.NRestarts >= o.MaxRestarts {
		return fmt.Sprintf("%s restarted %d times (it is %s)", KubeletUnit, u.NRestarts, u.ActiveState), true
	}
	if u.ActiveState != "active" {
		return fmt.Sprintf("%s is %s", KubeletUnit, u.ActiveState), false
	}
	url, err := healthzURL(o.Root)
	if err != nil {
		return err.Error(), false
	}
	if url == "" {
		return healthyStatus, false // the kubelet's health endpoint is off
	}
	if err := get(ctx, o.Client, url); err != nil {
		return fmt.Sprintf("kubelet active, %s: %v", url, err), false
	}
	return healthyStatus, false
}

// healthzURL reads the kubelet's health endpoint from the configuration
// first boot wrote; "" when the kubelet serves none (healthzPort 0).
func healthzURL(root string) (string, error) {
	p := filepath.Join(root, firstboot.KubeletConfigPath)
	f, err := os.Open(p)
	if err != nil {
		return "", fmt.Errorf("reading the kubelet configuration: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		return "", fmt.Errorf("reading the kubelet configuration: %w", err)
	}
	if len(b) > maxConfigSize {
		return "", fmt.Errorf("the kubelet configuration %s is larger than %d bytes", firstboot.KubeletConfigPath, maxConfigSize)
	}
	var cfg struct {
		HealthzBindAddress string `json:"healthzBindAddress"`
		HealthzPort        *int   `json:"healthzPort"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("the kubelet configuration %s: %w", firstboot.KubeletConfigPath, err)
	}
	port := 10248 // the kubelet's default
	if cfg.HealthzPort != nil {
		port = *cfg.HealthzPort
	}
	if port == 0 {
		return "", nil
	}
	if port < 0 || port > 65535 {
		return "", fmt.Errorf("the kubelet configuration: healthzPort %d", port)
	}
	host := cfg.HealthzBindAddress
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	if net.ParseIP(host) == nil {
		return "", fmt.Errorf("the kubelet configuration: healthzBindAddress %q is not an IP address", cfg.HealthzBindAddress)
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/healthz", nil
}

func get(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("%s: %q", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// ShowUnit reads a unit's state with systemctl show.
func ShowUnit(ctx context.Context, name string) (Unit, error) {
	out, err := runSystemctl(ctx, "show", "--property=ActiveState,NRestarts", "--", name)
	if err != nil {
		return Unit{}, err
	}
	return ParseShow(out)
}

// ParseShow parses "systemctl show" output (Key=Value lines) into a Unit.
func ParseShow(out []byte) (Unit, error) {
	if len(out) > maxBody {
		return Unit{}, fmt.Errorf("systemctl show printed more than %d bytes", maxBody)
	}
	var u Unit
	seen := 0
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "ActiveState":
			u.ActiveState = v
			seen++
		case "NRestarts":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return Unit{}, fmt.Errorf("systemctl show: NRestarts=%q", v)
			}
			u.NRestarts = n
			seen++
		}
	}
	if seen != 2 {
		return Unit{}, fmt.Errorf("systemctl show: no ActiveState and NRestarts in %q", out)
	}
	return u, nil
}
