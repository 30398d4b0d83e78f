package platform

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nodebake/nodebake/layers/firstboot/internal/testimage"
)

// fakeOpenStack plays the OpenStack metadata service's user_data.
type fakeOpenStack struct {
	userData []byte
	requests atomic.Int32
}

func (f *fakeOpenStack) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	if r.URL.Path != "/openstack/latest/user_data" || f.userData == nil {
		http.NotFound(w, r)
		return
	}
	w.Write(f.userData)
}

// configDrive is a config-2 drive as Nova and ironic write it: ISO 9660
// labelled config-2 with Rock Ridge and Joliet names.
func configDrive(t testing.TB, userData []byte) string {
	files := testimage.Files{
		"openstack/latest/meta_data.json":    []byte(`{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "worker01"}`),
		"openstack/latest/network_data.json": []byte(`{"links": [], "networks": [], "services": []}`),
		"openstack/latest/vendor_data.json":  []byte(`{}`),
		"ec2/latest/meta-data.json":          []byte(`{}`),
	}
	if userData != nil {
		files["openstack/latest/user_data"] = userData
		files["ec2/latest/user-data"] = userData
	}
	return testimage.ISO(t, "config-2", files, "-J", "-r", "-l", "-allow-lowercase", "-allow-multidot")
}

func TestOpenStack(t *testing.T) {
	tests := []struct {
		name     string
		dmi      map[string]string
		drive    string // image, or ""
		metadata []byte
		want     []byte
		source   string
		msg      string
		asked    bool // whether the metadata service must have been asked
	}{
		{"nova config drive (iso9660)", dmiOpenStack, configDrive(t, nodeConfig), nodeConfig, nodeConfig, "openstack config-2 drive /dev/sr0", "", false},
		{"ironic config drive partition", dmiBareMetal, configDrive(t, gz(t, nodeConfig)), nil, nodeConfig, "openstack config-2 drive /dev/sr0", "", false},
		{"vfat config drive", dmiOpenStack, testimage.FAT(t, "CONFIG-2", 12, 1440, testimage.Files{"openstack/latest/user_data": nodeConfig}), nil, nodeConfig, "openstack config-2 drive /dev/sr0", "", false},
		{"no drive: metadata service", dmiOpenStack, "", nodeConfig, nodeConfig, "openstack-metadata user_data", "", true},
		{"drive without user data ends the lookup", dmiOpenStack, configDrive(t, nil), nodeConfig, nil, "openstack config-2 drive", "/dev/sr0: no openstack/latest/user_data on the drive", false},
		{"empty user data", dmiOpenStack, configDrive(t, []byte{}), nil, nil, "openstack config-2 drive", "user_data is empty", false},
		{"gzip bomb on the drive", dmiOpenStack, configDrive(t, bomb(t, 4<<20)), nil, nil, "openstack config-2 drive", "more than 65536", false},
		{"too large on the drive", dmiOpenStack, configDrive(t, make([]byte, 70_000)), nil, nil, "openstack config-2 drive", "file too large", false},
		{"no drive, no user data", dmiOpenStack, "", nil, nil, "openstack", "openstack: no node config from any source (openstack config-2 drive: no drive labelled config-2; openstack-metadata user_data: no user data (404))", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := &fakeOpenStack{userData: tt.metadata}
			srv := httptest.NewServer(md)
			defer srv.Close()
			m := newMachine(t, tt.dmi, "")
			if tt.drive != "" {
				m.drive("sr0", tt.drive)
			}
			var log syncBuffer
			d, c, err := Lookup(context.Background(), m.options(srv.URL, &log))
			if d.Platform != OpenStack {
				t.Fatalf("platform %s (%s)", d.Platform, d.Reason)
			}
			noSecret(t, "the log", log.String())
			if asked := md.requests.Load() > 0; asked != tt.asked {
				t.Errorf("metadata service asked: %v, want %v", asked, tt.asked)
			}
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || c.Source != tt.source {
					t.Fatalf("Lookup = %q from %q, %v; want it from %s", c.Data, c.Source, err, tt.source)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) || pe.Source != tt.source || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Lookup: %v; want an error from %q with %q", err, tt.source, tt.msg)
			}
			noSecret(t, "the error", err.Error())
		})
	}
}

func TestNoCloud(t *testing.T) {
	meta := []byte("instance-id: iid-worker01\nlocal-hostname: worker01\n")
	tests := []struct {
		name  string
		dmi   map[string]string
		drive string
		want  []byte
		msg   string
	}{
		{"iso9660 cidata", dmiQEMU, testimage.ISO(t, "cidata", testimage.Files{"user-data": nodeConfig, "meta-data": meta}, "-J", "-r"), nodeConfig, ""},
		{"vfat cidata", dmiQEMU, testimage.FAT(t, "cidata", 12, 1440, testimage.Files{"user-data": gz(t, nodeConfig), "meta-data": meta}), nodeConfig, ""},
		{"vfat CIDATA FAT32", dmiQEMU, testimage.FAT(t, "CIDATA", 32, 40960, testimage.Files{"user-data": nodeConfig, "meta-data": meta}), nodeConfig, ""},
		{"no user-data", dmiQEMU, testimage.ISO(t, "cidata", testimage.Files{"meta-data": meta}, "-J", "-r"), nil, "/dev/vdb: no user-data on the drive"},
		{"serial says nocloud, no drive", map[string]string{"sys_vendor": "QEMU", "product_serial": "ds=nocloud"}, "", nil, "no drive labelled cidata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMachine(t, tt.dmi, "")
			if tt.drive != "" {
				m.drive("vdb", tt.drive)
			}
			d, c, err := Lookup(context.Background(), m.options("http://127.0.0.1:1", nil))
			if d.Platform != NoCloud {
				t.Fatalf("platform %s", d.Platform)
			}
			if tt.want != nil {
				if err != nil || string(c.Data) != string(tt.want) || c.Source != "nocloud cidata drive /dev/vdb" {
					t.Fatalf("Lookup = %q from %q, %v", c.Data, c.Source, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Lookup: %v; want %q", err, tt.msg)
			}
		})
	}
}

func BenchmarkReadConfigDrive(b *testing.B) {
	m := newMachine(b, dmiOpenStack, "")
	m.drive("sr0", configDrive(b, nodeConfig))
	opts := m.options("http://127.0.0.1:1", nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadOpenStackMetadata(b *testing.B) {
	srv := httptest.NewServer(&fakeOpenStack{userData: nodeConfig})
	defer srv.Close()
	m := newMachine(b, dmiOpenStack, "")
	opts := m.options(srv.URL, nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadNoCloud(b *testing.B) {
	m := newMachine(b, dmiQEMU, "")
	m.drive("vdb", testimage.FAT(b, "CIDATA", 12, 1440, testimage.Files{"user-data": nodeConfig, "meta-data": []byte("instance-id: x\n")}))
	opts := m.options("http://127.0.0.1:1", nil)
	for b.Loop() {
		if _, _, err := Lookup(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
	}
}
