package nodeconfig

import (
	"encoding/base64"
	"fmt"
	"reflect"
	"strings"

	"github.com/nodebake/nodebake/layers/firstboot/strictyaml"
)

// Kubeconfig is the subset of a kubeconfig (apiVersion v1, kind Config)
// that first boot reads and writes: one cluster with an https server and
// an embedded CA, one user with an embedded client certificate and key,
// one context joining them. Field order is the order Marshal writes.
type Kubeconfig struct {
	APIVersion     string              `json:"apiVersion"`
	Kind           string              `json:"kind"`
	Clusters       []KubeconfigCluster `json:"clusters"`
	Users          []KubeconfigUser    `json:"users"`
	Contexts       []KubeconfigContext `json:"contexts"`
	CurrentContext string              `json:"current-context"`
	// Preferences may be given empty, as kubectl writes it.
	Preferences struct{} `json:"preferences"`
}

// KubeconfigCluster is a named cluster.
type KubeconfigCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		CertificateAuthorityData string `json:"certificate-authority-data"`
		Server                   string `json:"server"`
	} `json:"cluster"`
}

// KubeconfigUser is a named user.
type KubeconfigUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificateData string `json:"client-certificate-data"`
		ClientKeyData         string `json:"client-key-data"`
	} `json:"user"`
}

// KubeconfigContext is a named context.
type KubeconfigContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// Names first boot gives the entries of the kubeconfigs it writes.
const (
	kubeconfigCluster = "kubernetes"
	kubeconfigContext = "default"
)

// NewKubeconfig returns a kubeconfig for user at server, with the CA and
// the client certificate and key (PEM) embedded.
func NewKubeconfig(server, caPEM, user, certPEM, keyPEM string) *Kubeconfig {
	b64 := func(pem string) string {
		return base64.StdEncoding.EncodeToString([]byte(strings.TrimSpace(pem) + "\n"))
	}
	k := &Kubeconfig{APIVersion: "v1", Kind: "Config", CurrentContext: kubeconfigContext}
	k.Clusters = make([]KubeconfigCluster, 1)
	k.Clusters[0].Name = kubeconfigCluster
	k.Clusters[0].Cluster.CertificateAuthorityData = b64(caPEM)
	k.Clusters[0].Cluster.Server = server
	k.Users = make([]KubeconfigUser, 1)
	k.Users[0].Name = user
	k.Users[0].User.ClientCertificateData = b64(certPEM)
	k.Users[0].User.ClientKeyData = b64(keyPEM)
	k.Contexts = make([]KubeconfigContext, 1)
	k.Contexts[0].Name = kubeconfigContext
	k.Contexts[0].Context.Cluster = kubeconfigCluster
	k.Contexts[0].Context.User = user
	return k
}

// Marshal writes k as YAML.
func (k *Kubeconfig) Marshal() ([]byte, error) {
	n := encode(reflect.ValueOf(k).Elem())
	out, err := strictyaml.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("writing a kubeconfig: %w", err)
	}
	return out, nil
}

// kubeconfigUnsupported explains the kubeconfig fields that are refused:
// what first boot writes must be what it checked.
var kubeconfigUnsupported = map[string]string{
	"insecure-skip-tls-verify": "kube-proxy must verify the API server against kubernetes.caCert",
	"certificate-authority":    "embed the CA as certificate-authority-data",
	"client-certificate":       "embed the certificate as client-certificate-data",
	"client-key":               "embed the key as client-key-data",
	"token":                    "kube-proxy authenticates with a client certificate",
	"tokenFile":                "kube-proxy authenticates with a client certificate",
	"username":                 "kube-proxy authenticates with a client certificate",
	"password":                 "kube-proxy authenticates with a client certificate",
	"exec":                     "kube-proxy authenticates with a client certificate",
	"auth-provider":            "kube-proxy authenticates with a client certificate",
	"as":                       "impersonation changes kube-proxy's identity",
	"as-uid":                   "impersonation changes kube-proxy's identity",
	"as-groups":                "impersonation changes kube-proxy's identity",
	"as-user-extra":            "impersonation changes kube-proxy's identity",
	"proxy-url":                "kube-proxy talks to the API server directly",
	"tls-server-name":          "the server's certificate must match its URL",
	"namespace":                "kube-proxy is not namespaced",
	"extensions":               "extensions would be dropped",
	"disable-compression":      "it would be dropped",
}

// ParseKubeconfig reads a kubeconfig (YAML in the strict subset, or JSON)
// into Kubeconfig; fields outside it are refused, each named. Problems name
// fields under field (e.g. "kubernetes.kubeProxy.kubeconfig.users[0]").
// It does not check the values: see checkKubeconfig.
func ParseKubeconfig(s, field string) (*Kubeconfig, error) {
	root, err := parseDocument([]byte(s), field, "kubeconfig")
	if err != nil {
		return nil, err
	}
	var k Kubeconfig
	d := decoder{unsupported: kubeconfigUnsupported}
	d.decode(root, reflect.ValueOf(&k).Elem(), "")
	probs := d.probs.result()
	for i := range probs {
		p := &probs[i]
		if p.Line > 0 {
			p.Message = fmt.Sprintf("%s (kubeconfig line %d)", p.Message, p.Line)
			p.Line = 0
		}
		if p.Field == documentField {
			p.Field = field
		} else if p.Field != "" {
			p.Field = field + "." + p.Field
		}
	}
	if len(probs) > 0 {
		return nil, probs
	}
	return &k, nil
}

// Credentials returns the server and the client certificate and key (PEM)
// of a kubeconfig with one cluster and one user (see ParseKubeconfig; Load
// checks them).
func (k *Kubeconfig) Credentials() (server, certPEM, keyPEM string, err error) {
	if len(k.Clusters) != 1 || len(k.Users) != 1 {
		return "", "", "", fmt.Errorf("%d clusters and %d users; want one of each", len(k.Clusters), len(k.Users))
	}
	cert, err := base64.StdEncoding.Strict().DecodeString(k.Users[0].User.ClientCertificateData)
	if err != nil {
		return "", "", "", fmt.Errorf("client-certificate-data: %w", err)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(k.Users[0].User.ClientKeyData)
	if err != nil {
		return "", "", "", fmt.Errorf("client-key-data: %w", err)
	}
	return k.Clusters[0].Cluster.Server, string(cert), string(key), nil
}

// kubeconfigCredentials is what a checked kubeconfig holds.
type kubeconfigCredentials struct {
	server, caPEM, certPEM, keyPEM string
}

// credentials checks the structure of k (kind, version, one cluster, user
// and context that refer to each other, the current context) and returns
// its credentials decoded; problems name fields under field.
func (k *Kubeconfig) credentials(field string, add func(field, format string, args ...any)) (kubeconfigCredentials, bool) {
	var c kubeconfigCredentials
	ok := true
	bad := func(f, format string, args ...any) {
		ok = false
		add(join(field, f), format, args...)
	}
	switch {
	case k.Kind == "":
		bad("kind", "required: a kubeconfig has kind Config")
	case k.Kind != "Config":
		bad("kind", "is %q; a kubeconfig has kind Config", k.Kind)
	}
	switch {
	case k.APIVersion == "":
		bad("apiVersion", "required: a kubeconfig has apiVersion v1")
	case k.APIVersion != "v1":
		bad("apiVersion", "is %q; a kubeconfig has apiVersion v1", k.APIVersion)
	}
	for _, n := range []struct {
		name string
		len  int
	}{{"clusters", len(k.Clusters)}, {"users", len(k.Users)}, {"contexts", len(k.Contexts)}} {
		if n.len != 1 {
			bad(n.name, "has %d entries; kube-proxy's kubeconfig holds exactly one cluster, one user and one context", n.len)
		}
	}
	if !ok {
		return c, false
	}
	cl, u, cx := k.Clusters[0], k.Users[0], k.Contexts[0]
	for _, n := range []struct{ field, v string }{
		{"clusters[0].name", cl.Name}, {"users[0].name", u.Name}, {"contexts[0].name", cx.Name},
		{"current-context", k.CurrentContext},
	} {
		if n.v == "" {
			bad(n.field, "required")
		}
	}
	if !ok {
		return c, false
	}
	if k.CurrentContext != cx.Name {
		bad("current-context", "%q names no context (the context is %q)", k.CurrentContext, cx.Name)
	}
	if cx.Context.Cluster != cl.Name {
		bad("contexts[0].context.cluster", "%q names no cluster (the cluster is %q)", cx.Context.Cluster, cl.Name)
	}
	if cx.Context.User != u.Name {
		bad("contexts[0].context.user", "%q names no user (the user is %q)", cx.Context.User, u.Name)
	}
	c.server = cl.Cluster.Server
	if c.server == "" {
		bad("clusters[0].cluster.server", "required")
	} else if err := checkAPIServer(c.server); err != nil {
		bad("clusters[0].cluster.server", "%v", err)
	}
	for _, d := range []struct {
		field, v string
		dst      *string
	}{
		{"clusters[0].cluster.certificate-authority-data", cl.Cluster.CertificateAuthorityData, &c.caPEM},
		{"users[0].user.client-certificate-data", u.User.ClientCertificateData, &c.certPEM},
		{"users[0].user.client-key-data", u.User.ClientKeyData, &c.keyPEM},
	} {
		if d.v == "" {
			bad(d.field, "required")
			continue
		}
		b, err := base64.StdEncoding.Strict().DecodeString(d.v)
		if err != nil {
			bad(d.field, "not base64: %v", err)
			continue
		}
		*d.dst = string(b)
	}
	return c, ok
}
