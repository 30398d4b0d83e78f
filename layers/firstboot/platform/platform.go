// Package platform finds the node config where the platform a node booted
// on keeps per-instance data: the EC2, GCE and Azure metadata services, an
// OpenStack/Ironic/Metal3 config-2 drive or the OpenStack metadata
// service, a NoCloud cidata drive, or an https URL pinned by its sha256 on
// the kernel command line (network-booted bare metal).
//
// The life of a lookup:
//
//  1. Detect names the platform without touching the network: an explicit
//     nodebake.platform= on the kernel command line wins; otherwise each
//     platform in the table checks what the firmware reports
//     (/sys/class/dmi/id, /sys/hypervisor/uuid) and, for the drive-based
//     platforms, the labels of the block devices. Nothing matched is
//     platform None, and the caller goes on with its own sources.
//  2. Detection.Read asks the platform's sources in order under one time
//     limit. A source with nothing for this node (an HTTP 404, no drive)
//     passes to the next; any other failure ends the lookup, failed
//     closed, with an *Error naming the source and the problem. Requests
//     are retried with backoff on connection errors, timeouts and 5xx.
//     Every body is read with a size bound; base64 is decoded where the
//     platform says so; gzip is recognised by its magic bytes and
//     decompressed with a bound.
//  3. Detection.Report tells the platform how first boot ended, where the
//     platform wants to know (Azure's wireserver health report).
//
// Adding a platform is one entry in table plus its reader.
//
// Nothing here logs or returns the content of user data: only sizes,
// statuses and the names of sources. Standard library only.
package platform

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nodebake/nodebake/layers/firstboot/blockdev"
	"github.com/nodebake/nodebake/layers/firstboot/cmdline"
	"github.com/nodebake/nodebake/layers/firstboot/nodeconfig"
)

// Name names a platform, as nodebake.platform= spells it.
type Name string

// The platforms.
const (
	EC2       Name = "ec2"
	GCE       Name = "gce"
	Azure     Name = "azure"
	OpenStack Name = "openstack"
	NoCloud   Name = "nocloud"
	Metal     Name = "metal"
	// None is no platform: the node config comes from elsewhere.
	None Name = "none"
)

// Kernel command line parameters.
const (
	// ParamPlatform names the platform, skipping detection.
	ParamPlatform = "nodebake.platform"
	// ParamTimeout overrides the time limit of a platform's lookup: a Go
	// duration ("90s", "2m") or whole seconds ("90").
	ParamTimeout = "nodebake.timeout"
	// ParamURL is the https URL of the node config of a network-booted
	// node; ParamSHA256 is its required digest (64 hex digits).
	ParamURL    = "nodebake.url"
	ParamSHA256 = "nodebake.sha256"
)

// Defaults of Options.
const (
	// DefaultTimeout bounds one platform's lookup, retries included.
	DefaultTimeout = 60 * time.Second
	// MaxTimeout bounds what nodebake.timeout= may ask for.
	MaxTimeout = 30 * time.Minute
	// DefaultAttemptTimeout bounds one request (connect, headers, body).
	DefaultAttemptTimeout = 5 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound the wait between
	// attempts, doubling from the first.
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 4 * time.Second
	// DefaultMaxSize bounds the node config, after decoding and
	// decompression: nodeconfig's size cap, the one home of that bound.
	DefaultMaxSize = nodeconfig.MaxSize
)

// The services' addresses. The image keeps pods away from them (see
// layers/worker's metadata guard), except for DNS on port 53: GCE's
// metadata server and Azure's wireserver are also DNS resolvers.
const (
	// MetadataIPv4 is the link-local metadata service of EC2, GCE, Azure
	// and OpenStack.
	MetadataIPv4 = "169.254.169.254"
	// MetadataIPv6 is EC2's IPv6 metadata endpoint (Nitro instances in an
	// IPv6 subnet, when turned on).
	MetadataIPv6 = "fd00:ec2::254"
	// WireServerIPv4 is Azure's wireserver (and DNS resolver).
	WireServerIPv4 = "168.63.129.16"
)

// Production addresses of the services.
const (
	LinkLocalEndpoint  = "http://" + MetadataIPv4
	AzureWireServer    = "http://" + WireServerIPv4
	defaultEC2         = LinkLocalEndpoint
	defaultGCE         = LinkLocalEndpoint
	defaultAzureIMDS   = LinkLocalEndpoint
	defaultOpenStackMD = LinkLocalEndpoint
)

// Endpoints are the base URLs of the services (scheme and host, no
// trailing slash). Empty fields mean the production addresses; tests point
// them at loopback.
type Endpoints struct {
	EC2       string
	GCE       string
	AzureIMDS string
	// AzureWireServer, when empty, is taken from DHCP option 245 in
	// systemd-networkd's leases, else AzureWireServer.
	AzureWireServer string
	OpenStack       string
}

// Options configure detection, reading and reporting.
type Options struct {
	// Root prefixes /proc/cmdline, /sys, /dev and /run; "" means "/".
	Root string
	// Endpoints override the services' addresses.
	Endpoints Endpoints
	// Timeout bounds one platform's lookup; nodebake.timeout= on the
	// kernel command line overrides it; DefaultTimeout when both are
	// unset.
	Timeout time.Duration
	// AttemptTimeout bounds one request; DefaultAttemptTimeout when zero.
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts; the
	// defaults when zero.
	MinBackoff, MaxBackoff time.Duration
	// MaxSize bounds the node config; DefaultMaxSize when zero.
	MaxSize int64
	// RootCAs verify https URLs (the metal source); nil means the system
	// roots (/etc/ssl/certs).
	RootCAs *x509.CertPool
	// Log receives one line per failed attempt and per notable step;
	// never any user data. May be nil.
	Log io.Writer
	// Cmdline, when set, is the kernel command line already read by the
	// caller; nil reads Root's /proc/cmdline.
	Cmdline *cmdline.Params
	// Devices, when set, lists the block devices with a FAT or ISO 9660
	// label (blockdev.Scan): a caller that scanned them already passes
	// its result, so that the devices are read once. Nil scans Root.
	Devices func() ([]blockdev.Device, error)
}

func (o Options) withDefaults() Options {
	if o.Root == "" {
		o.Root = "/"
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxSize <= 0 {
		o.MaxSize = DefaultMaxSize
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return o
}

// platform is one entry of the table.
type platform struct {
	name Name
	// detect reports why the machine is on this platform, or "".
	detect func(*probe) string
	// sources are asked in order.
	sources []source
	// report, if set, tells the platform how first boot ended.
	report func(ctx context.Context, e *env, failure error) error
}

// source is one place a platform keeps the node config.
type source struct {
	// name is how status.json and errors name it.
	name string
	// read returns the node config (decoded) and, when it says more than
	// name, where exactly it came from (e.g. the drive). It returns an
	// error wrapping ErrNoData when this source has nothing for the node.
	read func(ctx context.Context, e *env) (data []byte, where string, err error)
}

// table lists the platforms in the order detection tries them: an
// explicit URL first, then the clouds by their firmware strings, then the
// drive-based platforms (whose check reads block devices).
func table() []platform {
	return []platform{
		{name: Metal, detect: detectMetal, sources: []source{
			{name: "metal " + ParamURL, read: readMetalURL},
		}},
		{name: EC2, detect: detectEC2, sources: []source{
			{name: "ec2-imds user-data", read: readEC2},
		}},
		{name: GCE, detect: detectGCE, sources: []source{
			{name: "gce-metadata " + GCEAttribute, read: readGCEAttribute(GCEAttribute)},
			{name: "gce-metadata user-data", read: readGCEAttribute("user-data")},
		}},
		{name: Azure, detect: detectAzure, report: reportAzure, sources: []source{
			{name: "azure-imds userData", read: readAzureIMDS},
		}},
		{name: OpenStack, detect: detectOpenStack, sources: []source{
			{name: "openstack config-2 drive", read: readConfigDrive},
			{name: "openstack-metadata user_data", read: readOpenStackMetadata},
		}},
		{name: NoCloud, detect: detectNoCloud, sources: []source{
			{name: "nocloud cidata drive", read: readNoCloud},
		}},
	}
}

// Names lists the names nodebake.platform= accepts.
func Names() []Name {
	var n []Name
	for _, p := range table() {
		n = append(n, p.name)
	}
	return append(n, None)
}

// Sentinel errors, for errors.Is.
var (
	// ErrNoData: a source, or every source of a platform, has no node
	// config for this node.
	ErrNoData = errors.New("no node config")
	// ErrNoPlatform is returned by Read when no platform was detected.
	ErrNoPlatform = errors.New("no platform detected")
	// ErrTimeout: the platform's time limit ran out while retrying.
	ErrTimeout = errors.New("no answer in time")
)

// Error is a failed lookup: the platform, the source that failed (or, when
// every source had nothing, all of them) and the problem.
type Error struct {
	Platform Name
	Source   string
	Err      error
}

func (e *Error) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Detection is the platform a node is on, and why.
type Detection struct {
	Platform Name
	// Reason says what decided it, e.g. `dmi sys_vendor "Amazon EC2"`.
	Reason string
	// Timeout is the lookup's time limit (nodebake.timeout= applied).
	Timeout time.Duration

	p     *platform
	probe *probe
	opts  Options
}

// Sources lists the names of the platform's sources, in the order Read
// asks them.
func (d Detection) Sources() []string {
	if d.p == nil {
		return nil
	}
	var s []string
	for _, src := range d.p.sources {
		s = append(s, src.name)
	}
	return s
}

// Config is a node config found on the platform.
type Config struct {
	// Data is the node config, decoded and decompressed.
	Data []byte
	// Source says where it came from, e.g. "ec2-imds user-data" or
	// "openstack config-2 drive /dev/sr0".
	Source string
}

// Detect names the platform from the kernel command line and what the
// firmware and block devices report. It touches no network. Its only
// errors are a bad nodebake.platform= or nodebake.timeout= and an
// unreadable command line.
func Detect(opts Options) (Detection, error) {
	opts = opts.withDefaults()
	var params cmdline.Params
	if opts.Cmdline != nil {
		params = *opts.Cmdline
	} else {
		p, err := cmdline.Read(opts.Root)
		if err != nil {
			return Detection{}, err
		}
		params = p
	}
	timeout, err := timeoutFrom(params, opts.Timeout)
	if err != nil {
		return Detection{}, err
	}
	pr := newProbe(opts.Root, params, opts.Devices)
	d := Detection{Platform: None, Timeout: timeout, probe: pr, opts: opts}
	platforms := table()
	if v, ok := params.Get(ParamPlatform); ok {
		d.Reason = "kernel command line " + ParamPlatform + "=" + v
		if Name(v) == None {
			return d, nil
		}
		for i := range platforms {
			if string(platforms[i].name) == v {
				d.Platform, d.p = platforms[i].name, &platforms[i]
				return d, nil
			}
		}
		var known []string
		for _, n := range Names() {
			known = append(known, string(n))
		}
		return Detection{}, fmt.Errorf("kernel command line %s=%q: unknown platform (known: %s)", ParamPlatform, v, strings.Join(known, ", "))
	}
	for i := range platforms {
		if why := platforms[i].detect(pr); why != "" {
			d.Platform, d.Reason, d.p = platforms[i].name, why, &platforms[i]
			return d, nil
		}
	}
	d.Reason = "no platform matched"
	return d, nil
}

// timeoutFrom reads nodebake.timeout=, else def, else DefaultTimeout.
func timeoutFrom(params cmdline.Params, def time.Duration) (time.Duration, error) {
	v, ok := params.Get(ParamTimeout)
	if !ok {
		if def > 0 {
			return def, nil
		}
		return DefaultTimeout, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, fmt.Errorf("kernel command line %s=%q: want a duration such as 90s or 2m, or whole seconds", ParamTimeout, v)
		}
		d = time.Duration(n) * time.Second
	}
	if d <= 0 || d > MaxTimeout {
		return 0, fmt.Errorf("kernel command line %s=%q: want more than 0 and at most %s", ParamTimeout, v, MaxTimeout)
	}
	return d, nil
}

// Read asks the platform's sources in order, within d.Timeout, with the
// options given to Detect, and returns the first node config found. When
// no platform was detected it returns ErrNoPlatform. Every other failure
// is an *Error.
func (d Detection) Read(ctx context.Context) (Config, error) {
	if d.p == nil {
		return Config{}, ErrNoPlatform
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	e := newEnv(d)
	defer e.client.CloseIdleConnections()
	var none []string
	for _, src := range d.p.sources {
		data, where, err := src.read(ctx, e.forSource(src.name))
		if errors.Is(err, ErrNoData) {
			none = append(none, src.name+": "+err.Error())
			continue
		}
		if err != nil {
			return Config{}, &Error{Platform: d.Platform, Source: src.name, Err: err}
		}
		if where == "" {
			where = src.name
		}
		return Config{Data: data, Source: where}, nil
	}
	return Config{}, &Error{Platform: d.Platform, Source: string(d.Platform),
		Err: fmt.Errorf("%w from any source (%s)", ErrNoData, strings.Join(none, "; "))}
}

// Reports says whether the platform wants to be told how first boot
// ended: whether Report sends anything.
func (d Detection) Reports() bool { return d.p != nil && d.p.report != nil }

// Report tells the platform how first boot ended: failure is nil on
// success, else the problem (its message is sent, cut to 512 characters,
// where the platform shows it; it must hold no secrets). Platforms that
// want no report return nil at once. It has its own time limit,
// d.Timeout.
func (d Detection) Report(ctx context.Context, failure error) error {
	if d.p == nil || d.p.report == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	e := newEnv(d)
	defer e.client.CloseIdleConnections()
	if err := d.p.report(ctx, e.forSource(string(d.Platform)+" ready report"), failure); err != nil {
		return &Error{Platform: d.Platform, Source: string(d.Platform) + " ready report", Err: err}
	}
	return nil
}

// Lookup is Detect followed by Read.
func Lookup(ctx context.Context, opts Options) (Detection, Config, error) {
	d, err := Detect(opts)
	if err != nil {
		return d, Config{}, err
	}
	c, err := d.Read(ctx)
	return d, c, err
}

// noData says why a source has nothing; it wraps ErrNoData.
func noData(format string, args ...any) error {
	return &noDataError{msg: fmt.Sprintf(format, args...)}
}

type noDataError struct{ msg string }

func (e *noDataError) Error() string        { return e.msg }
func (e *noDataError) Is(target error) bool { return target == ErrNoData }

// env is what a reader works with.
type env struct {
	opts   Options
	source string
	probe  *probe
	client *http.Client
}

func newEnv(d Detection) *env {
	opts := d.opts.withDefaults()
	return &env{opts: opts, probe: d.probe, client: newClient(opts)}
}

// forSource returns a copy of e whose log lines and errors name source.
func (e *env) forSource(name string) *env {
	c := *e
	c.source = name
	return &c
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.opts.Log, "%s: %s\n", e.source, fmt.Sprintf(format, args...))
}

func (e *env) endpoint(set, def string) string {
	if set != "" {
		return strings.TrimSuffix(set, "/")
	}
	return def
}
