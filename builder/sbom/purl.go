package sbom

import (
	"sort"
	"strings"
)

// Package URLs (purl): pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS.

// debPURL is pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=DISTRO&upstream=SRC.
func debPURL(p Package, distro string) string {
	q := map[string]string{"arch": p.Architecture, "distro": distro}
	if p.SourceName != "" && p.SourceName != p.Name {
		up := p.SourceName
		if p.SourceVersion != "" {
			up += "@" + p.SourceVersion
		}
		q["upstream"] = up
	}
	return purl("deb", "debian/"+p.Name, p.Version, q)
}

// componentPURL is pkg:TYPE/NAME@VERSION: for a release artifact with its
// download URL and checksum, for a component built from source plain
// (pkg:golang/MODULE@VERSION); pkg:oci for one taken from an image.
func componentPURL(c Component, arch string) string {
	switch {
	case c.From == "oci":
		return ociPURL(c.Source, c.Checksum, arch)
	case c.PackageType == "" || c.PackageName == "":
		return ""
	case c.From == "go":
		return purl(c.PackageType, c.PackageName, c.Version, nil)
	}
	q := map[string]string{"checksum": c.Checksum}
	if strings.HasPrefix(c.Source, "https://") || strings.HasPrefix(c.Source, "http://") {
		q["download_url"] = c.Source
	}
	return purl(c.PackageType, c.PackageName, c.Version, q)
}

// ociPURL is pkg:oci/NAME@DIGEST?arch=ARCH&repository_url=REPO&tag=TAG for
// a registry reference; empty for a local OCI layout or tarball, or without
// a digest.
func ociPURL(ref, digest, arch string) string {
	if digest == "" || ref == "" || strings.HasPrefix(ref, "oci:") || strings.HasPrefix(ref, "tarball:") || strings.Contains(ref, "://") {
		return ""
	}
	repo := ref
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	tag := ""
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo, tag = repo[:i], repo[i+1:]
	}
	name := strings.ToLower(repo[strings.LastIndex(repo, "/")+1:])
	if name == "" {
		return ""
	}
	return purl("oci", name, digest, map[string]string{"arch": arch, "repository_url": repo, "tag": tag})
}

// purl assembles a package URL; path is NAMESPACE/NAME, each segment
// percent-encoded. Empty qualifiers are left out; the rest are sorted by key.
func purl(typ, path, version string, qualifiers map[string]string) string {
	var b strings.Builder
	b.WriteString("pkg:" + typ + "/")
	for i, seg := range strings.Split(path, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(escape(seg, ":"))
	}
	if version != "" {
		b.WriteString("@" + escape(version, ":"))
	}
	var keys []string
	for k, v := range qualifiers {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for i, k := range keys {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(k + "=" + escape(qualifiers[k], ":/"))
	}
	return b.String()
}

// escape percent-encodes every byte of s but the unreserved characters and
// those in keep.
func escape(s, keep string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~', strings.IndexByte(keep, c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}
