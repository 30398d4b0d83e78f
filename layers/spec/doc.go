// Package spec defines the worker image spec: one Go type, Spec, that
// describes a whole worker image, decoded from YAML with camelCase keys.
//
// A minimal spec:
//
//	apiVersion: nodebake.io/v1alpha1
//	kind: WorkerImage
//	base:
//	  image: oci:base/trixie-amd64       # or tarball:FILE, or a registry reference
//	kubernetes:
//	  version: v1.35.4
//	components:                          # keys of the component catalogue (package components)
//	  containerd: {version: v2.2.0, sha256: {amd64: <64 hex>}}
//	  kubelet: {sha256: {amd64: <64 hex>}}  # version defaults to kubernetes.version
//	  ...
//
// The other top-level sections are name, arch, sourceDateEpoch, sources
// (download mirror and retries), kubelet and kubeProxy (command-line
// settings and a configuration deep-merged over defaults taken from the
// seed workflow: IPVS kube-proxy, systemd cgroup driver, webhook
// authorization, anonymous authentication off, cluster DNS 10.32.0.254),
// containerd, images (container images to preload), files (extra files,
// directories and symlinks) and output (formats, partition sizes,
// compression level). Which components exist, their release URLs,
// layouts, default versions and whether they are baked when the spec does
// not list them is the component catalogue's (package components).
// Per-node values (node addresses, TLS files) are not part of a spec: the
// image's first-boot step fills them in.
//
// The life of a spec: Parse or Load decodes strictly (unknown fields,
// duplicate keys and wrong types are errors naming the field path and the
// line); Default fills in every default in place; Validate reports every
// problem at once as a *ValidationError, including settings that conflict
// (cgroup drivers, CIDRs, version skew, files over managed paths). Dump
// writes the spec back as YAML and Hash fingerprints the effective spec.
// LoadAndValidate does all of it. KubeletConfigJSON, KubeProxyConfigJSON,
// KubeletFlags and KubeProxyFlags render what the image's units use.
package spec
