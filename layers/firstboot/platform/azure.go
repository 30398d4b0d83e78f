package platform

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// Azure: user data from the instance metadata service, and the
// provisioning report to the wireserver that a VM without Azure's agent
// must send, or Azure marks its provisioning failed.
const (
	azureUserDataPath = "/metadata/instance/compute/userData?api-version=2021-01-01&format=text"
	azureGoalState    = "/machine/?comp=goalstate"
	azureHealth       = "/machine?comp=health"
	azureVersion      = "2012-11-30"
	azureAgentName    = "nodebake-firstboot"
	// maxGoalState bounds the goal state document.
	maxGoalState = 64 << 10
	// maxXMLDepth bounds the nesting of the goal state document.
	maxXMLDepth = 16
	// maxGoalStateValue bounds a value taken from the goal state.
	maxGoalStateValue = 256
	// maxHealthDescription is how much of a failure Azure is told
	// (cloud-init's cut).
	maxHealthDescription = 512
	// LeasesDir is where systemd-networkd keeps DHCP leases; Azure's DHCP
	// server names the wireserver in option 245.
	LeasesDir = "/run/systemd/netif/leases"
	// maxLease bounds a lease file read.
	maxLease = 64 << 10
)

func readAzureIMDS(ctx context.Context, e *env) ([]byte, string, error) {
	resp, err := e.do(ctx, request{
		method: http.MethodGet,
		url:    e.endpoint(e.opts.Endpoints.AzureIMDS, defaultAzureIMDS) + azureUserDataPath,
		header: http.Header{"Metadata": {"true"}},
		limit:  encodedLimit(e.opts.MaxSize),
		retry:  []int{http.StatusGone}, // IMDS is being updated: retry, says Azure
	})
	if err != nil {
		return nil, "", err
	}
	switch resp.status {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, "", noData("no userData (404)")
	default:
		return nil, "", unexpected(resp.status)
	}
	data, err := decode(resp.body, true, e.opts.MaxSize)
	if errors.Is(err, ErrNoData) {
		return nil, "", noData("userData is empty")
	}
	return data, "", err
}

// goalState is what the health report needs from the goal state.
type goalState struct {
	Incarnation string
	ContainerID string
	InstanceID  string
}

// reportAzure fetches the goal state and posts the health report: Ready,
// or NotReady with the substatus ProvisioningFailed and failure's message.
func reportAzure(ctx context.Context, e *env, failure error) error {
	wire := e.wireServer()
	hdr := http.Header{"X-Ms-Version": {azureVersion}, "X-Ms-Agent-Name": {azureAgentName}}
	resp, err := e.do(ctx, request{method: http.MethodGet, url: wire + azureGoalState, header: hdr, limit: maxGoalState, retry: []int{http.StatusGone}})
	if err != nil {
		return fmt.Errorf("fetching the goal state: %w", err)
	}
	if resp.status != http.StatusOK {
		return fmt.Errorf("fetching the goal state: %w", unexpected(resp.status))
	}
	gs, err := parseGoalState(resp.body)
	if err != nil {
		return fmt.Errorf("the goal state: %w", err)
	}
	doc := healthReport(gs, failure)
	post := http.Header{"Content-Type": {"text/xml; charset=utf-8"}}
	for k, v := range hdr {
		post[k] = v
	}
	resp, err = e.do(ctx, request{method: http.MethodPost, url: wire + azureHealth, header: post, body: doc, limit: maxGoalState, retry: []int{http.StatusGone}})
	if err != nil {
		return fmt.Errorf("posting the health report: %w", err)
	}
	if resp.status < 200 || resp.status > 299 {
		return fmt.Errorf("posting the health report: %w", unexpected(resp.status))
	}
	state := "Ready"
	if failure != nil {
		state = "NotReady (ProvisioningFailed)"
	}
	e.logf("reported %s to %s (incarnation %s)", state, wire, gs.Incarnation)
	return nil
}

// wireServer is the wireserver's base URL: the endpoint option, else DHCP
// option 245 from a systemd-networkd lease, else the well-known address.
func (e *env) wireServer() string {
	if e.opts.Endpoints.AzureWireServer != "" {
		return strings.TrimSuffix(e.opts.Endpoints.AzureWireServer, "/")
	}
	if ip, ok := leaseOption245(e.opts.Root); ok {
		return "http://" + ip.String()
	}
	return AzureWireServer
}

// leaseOption245 finds DHCP option 245 (4 bytes, an IPv4 address) in the
// leases systemd-networkd writes ("OPTION_245=a83f8110").
func leaseOption245(root string) (net.IP, bool) {
	dir := filepath.Join(root, LeasesDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	names := make([]string, 0, len(entries))
	for _, en := range entries {
		if en.Type().IsRegular() {
			names = append(names, en.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, maxLease))
		f.Close()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			v, ok := strings.CutPrefix(strings.TrimSpace(line), "OPTION_245=")
			if !ok {
				continue
			}
			raw, err := hex.DecodeString(v)
			if err != nil || len(raw) != 4 {
				continue
			}
			ip := net.IP(raw)
			if ip.IsUnspecified() || ip.IsLoopback() || ip.IsMulticast() || ip.Equal(net.IPv4bcast) {
				continue
			}
			return ip, true
		}
	}
	return nil, false
}

// parseGoalState takes Incarnation, Container/ContainerId and the first
// Container/RoleInstanceList/RoleInstance/InstanceId from a goal state
// document, with bounded size, depth and values.
func parseGoalState(b []byte) (goalState, error) {
	if len(b) > maxGoalState {
		return goalState{}, fmt.Errorf("more than %d bytes", maxGoalState)
	}
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	var path []string
	var gs goalState
	var text strings.Builder
	want := map[string]*string{
		"GoalState/Incarnation":                                        &gs.Incarnation,
		"GoalState/Container/ContainerId":                              &gs.ContainerID,
		"GoalState/Container/RoleInstanceList/RoleInstance/InstanceId": &gs.InstanceID,
	}
	rootSeen := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return goalState{}, fmt.Errorf("parsing XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(path) == 0 {
				if rootSeen || t.Name.Local != "GoalState" {
					return goalState{}, fmt.Errorf("the document is not one GoalState element (found %q)", t.Name.Local)
				}
				rootSeen = true
			}
			if len(path) == maxXMLDepth {
				return goalState{}, fmt.Errorf("nested deeper than %d elements", maxXMLDepth)
			}
			path = append(path, t.Name.Local)
			text.Reset()
		case xml.CharData:
			if text.Len()+len(t) > maxGoalStateValue {
				if _, ok := want[strings.Join(path, "/")]; ok {
					return goalState{}, fmt.Errorf("%s: longer than %d bytes", strings.Join(path, "/"), maxGoalStateValue)
				}
				continue
			}
			text.Write(t)
		case xml.EndElement:
			if p, ok := want[strings.Join(path, "/")]; ok && *p == "" {
				*p = strings.TrimSpace(text.String())
			}
			path = path[:len(path)-1]
			text.Reset()
		case xml.Directive:
			return goalState{}, errors.New("XML directives (DOCTYPE) are not allowed")
		}
	}
	if !rootSeen {
		return goalState{}, errors.New("no GoalState element")
	}
	if err := checkGoalState(gs); err != nil {
		return goalState{}, err
	}
	return gs, nil
}

// checkGoalState checks the values for what they must be: the incarnation
// a number, the ids made of letters, digits, '.', '_' and '-' (GUIDs and
// VM names).
func checkGoalState(gs goalState) error {
	if gs.Incarnation == "" || len(gs.Incarnation) > 10 || strings.Trim(gs.Incarnation, "0123456789") != "" {
		return fmt.Errorf("Incarnation %q: want a number", gs.Incarnation)
	}
	for _, f := range []struct{ name, v string }{{"ContainerId", gs.ContainerID}, {"InstanceId", gs.InstanceID}} {
		if f.v == "" {
			return fmt.Errorf("%s is missing", f.name)
		}
		for _, r := range f.v {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
				return fmt.Errorf("%s %q: want letters, digits, '.', '_' and '-'", f.name, f.v)
			}
		}
	}
	return nil
}

// healthReport renders the health document for the goal state.
func healthReport(gs goalState, failure error) []byte {
	esc := func(s string) string {
		var b strings.Builder
		_ = xml.EscapeText(&b, []byte(s))
		return b.String()
	}
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	b.WriteString(`<Health xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">` + "\n")
	fmt.Fprintf(&b, "  <GoalStateIncarnation>%s</GoalStateIncarnation>\n", esc(gs.Incarnation))
	b.WriteString("  <Container>\n")
	fmt.Fprintf(&b, "    <ContainerId>%s</ContainerId>\n", esc(gs.ContainerID))
	b.WriteString("    <RoleInstanceList>\n      <Role>\n")
	fmt.Fprintf(&b, "        <InstanceId>%s</InstanceId>\n", esc(gs.InstanceID))
	b.WriteString("        <Health>\n")
	if failure == nil {
		b.WriteString("          <State>Ready</State>\n")
	} else {
		b.WriteString("          <State>NotReady</State>\n")
		b.WriteString("          <Details>\n")
		b.WriteString("            <SubStatus>ProvisioningFailed</SubStatus>\n")
		fmt.Fprintf(&b, "            <Description>%s</Description>\n", esc(truncateRunes(failure.Error(), maxHealthDescription)))
		b.WriteString("          </Details>\n")
	}
	b.WriteString("        </Health>\n      </Role>\n    </RoleInstanceList>\n  </Container>\n</Health>\n")
	return []byte(b.String())
}

// truncateRunes cuts s to n characters, and invalid UTF-8 to U+FFFD.
func truncateRunes(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for k := range s {
		if i == n {
			return s[:k]
		}
		i++
	}
	return s
}
