// Package gosource builds pinned component binaries from source through the
// Go module proxy. Sources are verified by the Go checksum database; builds
// are reproducible (-trimpath, fixed version strings, no build ids), so the
// same version and Go toolchain give the same bytes.
//
// gosource is the mechanism only; which module, packages, tags and version
// stamps give each component's binaries (its Recipe) is the component
// catalogue's (package components).
package gosource

// Binary is one program a recipe builds.
type Binary struct {
	// Name is the output file name.
	Name string
	// Package is the import path of the main package.
	Package string
	// ExtraTags are build tags added for this binary only.
	ExtraTags []string
}

// Recipe describes how to build the binaries of one component.
type Recipe struct {
	// Component is the component's upstream name (kubelet, containerd,
	// cni-plugins, ...).
	Component string
	// Module is the Go module that holds the sources.
	Module string
	// Binaries lists the programs built.
	Binaries []Binary
	// Tags are build tags for every binary.
	Tags []string
	// CGO builds with cgo, statically linked.
	CGO bool
	// LDFlags returns the -X flags that stamp the version.
	LDFlags func(version string) []string
	// ExtraModules are further modules required at the same version
	// (etcdctl next to etcd).
	ExtraModules []string
	// ReplaceVersion returns the version at which the modules that the
	// module's go.mod replaces with its own directories are published
	// (Kubernetes publishes the staging modules of v1.35.4 as v0.35.4);
	// the release version itself when nil, as multi-module repositories
	// such as etcd tag every module with it.
	ReplaceVersion func(version string) string
}
