package inventory

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const iniInventory = `# comment
lonely.example ansible_port=2222

[vpn]
controller0[1:3].i.domain.tld
worker0[1:2].i.domain.tld wireguard_address=10.8.0.1/24 port=22 quoted="42" flag=True list="['a', 'b']"
web[a:c]:2201

[k8s_worker]
worker0[1:2].i.domain.tld # trailing

[k8s:children]
k8s_worker
k8s_controller

[k8s_controller]
controller0[1:3].i.domain.tld

[k8s_worker:vars]
k8s_interface = wg0
ansible_group_priority=5
`

const yamlInventory = `
all:
  hosts:
    lonely.example: {ansible_port: 2222}
  children:
    vpn:
      hosts:
        controller0[1:3].i.domain.tld:
        worker0[1:2].i.domain.tld:
          wireguard_address: 10.8.0.1/24
    k8s:
      children:
        k8s_worker:
          hosts:
            worker0[1:2].i.domain.tld:
          vars:
            k8s_interface: wg0
        k8s_controller:
          hosts:
            controller0[1:3].i.domain.tld:
`

func TestINI(t *testing.T) {
	var l Loader
	inv, err := l.LoadInventory(write(t, t.TempDir(), "hosts", iniInventory))
	if err != nil {
		t.Fatal(err)
	}
	wantHosts := []string{"lonely.example", "controller01.i.domain.tld", "controller02.i.domain.tld", "controller03.i.domain.tld",
		"worker01.i.domain.tld", "worker02.i.domain.tld", "weba", "webb", "webc"}
	if got := inv.Hosts(); !reflect.DeepEqual(got, wantHosts) {
		t.Errorf("hosts = %v, want %v", got, wantHosts)
	}
	if got, want := inv.Members("k8s"), []string{"worker01.i.domain.tld", "worker02.i.domain.tld", "controller01.i.domain.tld", "controller02.i.domain.tld", "controller03.i.domain.tld"}; !reflect.DeepEqual(got, want) {
		t.Errorf("members of k8s = %v, want %v", got, want)
	}
	if got := inv.Members("ungrouped"); !reflect.DeepEqual(got, []string{"lonely.example"}) {
		t.Errorf("ungrouped = %v", got)
	}
	vars := map[string]any{}
	for _, v := range inv.HostVars("worker02.i.domain.tld") {
		vars[v.Name] = v.Value
	}
	want := map[string]any{"wireguard_address": "10.8.0.1/24", "port": int64(22), "quoted": int64(42), "flag": true, "list": []any{"a", "b"}}
	if !reflect.DeepEqual(vars, want) {
		t.Errorf("inline host vars = %#v, want %#v", vars, want)
	}
	if v := inv.HostVars("webb"); len(v) != 1 || v[0].Name != "ansible_port" || v[0].Value != int64(2201) {
		t.Errorf("webb's vars = %v, want ansible_port 2201", v)
	}
	g := inv.Group("k8s_worker")
	if len(g.Vars) != 2 || g.Vars[0].Value != "wg0" || g.Vars[0].Source.Line != 20 {
		t.Errorf("[k8s_worker:vars] = %+v, want k8s_interface=wg0 (a string) at line 20", g.Vars)
	}
	if got, want := inv.HostGroups("worker01.i.domain.tld"), []string{"all", "k8s", "vpn", "k8s_worker"}; !reflect.DeepEqual(got, want) {
		t.Errorf("groups of worker01 = %v, want %v (by depth, then priority, then name)", got, want)
	}
}

func TestYAMLInventoryMatchesINI(t *testing.T) {
	var l Loader
	dir := t.TempDir()
	ini, err := l.LoadInventory(write(t, dir, "hosts", iniInventory))
	if err != nil {
		t.Fatal(err)
	}
	y, err := l.LoadInventory(write(t, dir, "hosts.yml", yamlInventory))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"vpn", "k8s_worker", "k8s_controller", "k8s", "all"} {
		a, b := ini.Members(g), y.Members(g)
		if g == "vpn" || g == "all" {
			a = filterOut(a, "web")
			a = filterOut(a, "lonely")
			b = filterOut(b, "lonely")
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("group %s: INI %v, YAML %v", g, a, b)
		}
	}
	if got := y.HostGroups("worker01.i.domain.tld"); !reflect.DeepEqual(got, []string{"all", "k8s", "vpn", "k8s_worker"}) {
		t.Errorf("YAML groups of worker01 = %v", got)
	}
}

func filterOut(l []string, prefix string) []string {
	var out []string
	for _, s := range l {
		if !strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

func TestInventoryRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, file, content, want string
	}{
		{"cycle", "hosts", "[a:children]\nb\n[b:children]\na\n", "its own ancestor"},
		{"huge range", "hosts", "[g]\nh[0:99999999]\n", "more than 10000 hosts"},
		{"nested ranges", "hosts", "[g]\nh[0:999][0:999]\n", "more than 10000 hosts"},
		{"many ranges", "hosts", "[g]\nh" + strings.Repeat("[0:0]", 100_000) + "\n", "host pattern of 500001 characters"},
		{"long host name", "hosts", "[g]\n" + strings.Repeat("a", MaxHostName+1) + "\n", "more than the limit of 250"},
		{"long host name from a range", "hosts", "[g]\n" + strings.Repeat("a", MaxHostName) + "[1:2]\n", "more than the limit of 250"},
		{"yaml long host name", "inv.yml", "g:\n  hosts:\n    " + strings.Repeat("a", MaxHostName+1) + ":\n", "more than the limit of 250"},
		{"bad section", "hosts", "[g:bogus]\n", "unknown section kind"},
		{"bad host", "hosts", "[g]\nbad/host\n", "not a valid host name"},
		{"bad var", "hosts", "[g]\nh 1x=2\n", "valid variable name"},
		{"unclosed quote", "hosts", "[g]\nh a='b\n", "unclosed quote"},
		{"bad port", "hosts", "[g]\nh:99999\n", "not 1-65535"},
		{"yaml unknown key", "inv.yml", "all:\n  hots: {}\n", `unknown key "hots"`},
		{"yaml dup group", "inv.yml", "g: {}\ng: {}\n", "duplicate group"},
		{"yaml not a mapping", "inv.yml", "- a\n", "a mapping of group names"},
		{"yaml vault", "inv.yml", "$ANSIBLE_VAULT;1.1;AES256\n3033\n", "Ansible Vault"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l Loader
			p := write(t, t.TempDir(), tc.file, tc.content)
			_, err := l.LoadInventory(p)
			var fe *FileError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &fe) || fe.File != p {
				t.Fatalf("got %v, want a FileError naming %s with %q", err, p, tc.want)
			}
		})
	}
}

// TestRangeStepOverflow: a range whose step would overflow past its end
// gives its hosts and ends.
func TestRangeStepOverflow(t *testing.T) {
	var l Loader
	inv, err := l.LoadInventory(write(t, t.TempDir(), "hosts", "[g]\nh[0:9223372036854775807:9223372036854775807]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := inv.Hosts(), []string{"h0", "h9223372036854775807"}; !reflect.DeepEqual(got, want) {
		t.Errorf("hosts %v, want %v", got, want)
	}
}

func TestVarsYAML11(t *testing.T) {
	d := t.TempDir()
	write(t, d, "all.yml", `
yes_bool: yes
off_bool: off
quoted_yes: "yes"
octal: 0644
hex: 0x1F
sexagesimal: 1:30
float: 1.23
version: "1.23.3"
nothing: ~
unsafe: !unsafe "{{ not templated }}"
secret: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  6162
anchor: &a {x: 1}
merged:
  <<: *a
  y: 2
`)
	var l Loader
	vd, err := l.LoadVars(filepath.Join(d, "all.yml"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]any{}
	for _, v := range vd.Files[0].Vars {
		got[v.Name] = v.Value
	}
	want := map[string]any{
		"yes_bool": true, "off_bool": false, "quoted_yes": "yes", "octal": int64(0o644), "hex": int64(31),
		"sexagesimal": int64(90), "float": 1.23, "version": "1.23.3", "nothing": nil,
		"unsafe": Unsafe("{{ not templated }}"), "secret": Vault("$ANSIBLE_VAULT;1.1;AES256\n6162\n"),
		"anchor": map[string]any{"x": int64(1)}, "merged": map[string]any{"x": int64(1), "y": int64(2)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("vars:\n got %#v\nwant %#v", got, want)
	}
	if vd.Files[0].Target != "all" || vd.Files[0].Vars[0].Source.Line != 2 {
		t.Errorf("target %q, first line %d", vd.Files[0].Target, vd.Files[0].Vars[0].Source.Line)
	}
}

func TestVarsDirectory(t *testing.T) {
	d := t.TempDir()
	write(t, d, "all.yml", "a: 1\n")
	write(t, d, "k8s_worker/10-first.yml", "b: 1\nc: 1\n")
	write(t, d, "k8s_worker/20-second.yaml", "b: 2\n")
	write(t, d, "k8s_worker/README.md", "not vars\n")
	write(t, d, ".hidden.yml", "x: 1\n")
	write(t, d, "vpn", "w: 1\n")
	var l Loader
	vd, err := l.LoadVars(d)
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, f := range vd.Files {
		targets = append(targets, f.Target+":"+filepath.Base(f.Path))
	}
	if want := []string{"all:all.yml", "k8s_worker:10-first.yml", "k8s_worker:20-second.yaml", "vpn:vpn"}; !reflect.DeepEqual(targets, want) {
		t.Errorf("files = %v, want %v", targets, want)
	}
	if len(vd.Ignored) != 2 {
		t.Errorf("ignored = %v, want the README and the hidden file", vd.Ignored)
	}
}

func TestVarsRefuses(t *testing.T) {
	bomb := "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
	prev := "a"
	for i := 0; i < 8; i++ {
		n := string(rune('b' + i))
		bomb += n + ": &" + n + " [*" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + ", *" + prev + "]\n"
		prev = n
	}
	deep := "a: " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n"
	for _, tc := range []struct {
		name, content, want string
	}{
		{"alias bomb", bomb, "more than 100000 values"},
		{"deep", deep, "nested more than 64 levels"},
		{"duplicate key", "a: 1\nb: 2\na: 3\n", `duplicate key "a" (first at line 1)`},
		{"bad name", "1abc: x\n", "not a valid variable name"},
		{"not a mapping", "- a\n", "a mapping of variable names"},
		{"two documents", "a: 1\n---\nb: 2\n", "a second YAML document"},
		{"unknown tag", "a: !custom x\n", "unsupported YAML tag !custom"},
		{"vault file", "$ANSIBLE_VAULT;1.1;AES256\n6162\n", "Ansible Vault"},
		{"too large", "a: " + strings.Repeat("x", MaxFileSize) + "\n", "larger than the limit"},
		{"syntax", "a: [\n", "did not find expected"},
		{"integer overflow", "a: 99999999999999999999\n", "out of range"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, t.TempDir(), "all.yml", tc.content)
			var l Loader
			_, err := l.LoadVars(p)
			var fe *FileError
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.As(err, &fe) || fe.File != p {
				t.Fatalf("got %v, want a FileError naming %s with %q", err, p, tc.want)
			}
		})
	}
}

func TestTotalBound(t *testing.T) {
	d := t.TempDir()
	chunk := "a: " + strings.Repeat("x", MaxFileSize-100) + "\n"
	for i := 0; i < MaxTotalSize/MaxFileSize+1; i++ {
		write(t, d, string(rune('a'+i))+".yml", chunk)
	}
	var l Loader
	if _, err := l.LoadVars(d); err == nil || !strings.Contains(err.Error(), "together") {
		t.Fatalf("got %v, want the total bound", err)
	}
}

func TestPrecedence(t *testing.T) {
	d := t.TempDir()
	inv := write(t, d, "hosts", "[all:vars]\nv=inline-all\n[k8s:children]\nk8s_worker\n[k8s:vars]\nv=inline-k8s\n[k8s_worker]\nw1 v=inline-host\nw2\n[k8s_worker:vars]\nv=inline-worker\n")
	write(t, d, "group_vars/all.yml", "v: gv-all\nonly_all: 1\n")
	write(t, d, "group_vars/k8s.yml", "v: gv-k8s\n")
	write(t, d, "group_vars/k8s_worker.yml", "v: gv-worker\n")
	write(t, d, "host_vars/w1.yml", "v: hv-w1\n")
	var l Loader
	tree := &Tree{}
	var err error
	if tree.Inventory, err = l.LoadInventory(inv); err != nil {
		t.Fatal(err)
	}
	if tree.GroupVars, err = l.LoadVars(filepath.Join(d, "group_vars")); err != nil {
		t.Fatal(err)
	}
	if tree.HostVars, err = l.LoadVars(filepath.Join(d, "host_vars")); err != nil {
		t.Fatal(err)
	}
	w1 := tree.Vars("w1")
	if w1["v"].Value != "hv-w1" || len(w1["v"].Overridden) != 7 {
		t.Errorf("w1's v = %v from %v (overriding %v), want hv-w1 over 7 others", w1["v"].Value, w1["v"].Source, w1["v"].Overridden)
	}
	if w2 := tree.Vars("w2"); w2["v"].Value != "gv-worker" || w2["only_all"].Value != int64(1) {
		t.Errorf("w2's v = %v, want gv-worker (group_vars of the deepest group over inline group vars)", w2["v"].Value)
	}
	// Without the files, the inline group vars in depth order.
	tree.GroupVars, tree.HostVars = nil, nil
	if w2 := tree.Vars("w2"); w2["v"].Value != "inline-worker" {
		t.Errorf("w2's inline v = %v, want inline-worker", w2["v"].Value)
	}
}

func TestDecodeYAML(t *testing.T) {
	v, err := DecodeYAML("doc", []byte("kind: X\nport: 10248\nflag: yes\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"kind": "X", "port": int64(10248), "flag": true}; !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v", v)
	}
	if _, err := DecodeYAML("doc", []byte("a: 1\na: 2\n")); err == nil || !strings.Contains(err.Error(), "doc:2: duplicate key") {
		t.Errorf("duplicate key: got %v", err)
	}
}
