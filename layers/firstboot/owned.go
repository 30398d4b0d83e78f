package firstboot

import (
	"path"
	"strings"
)

// OwnedFiles returns every file first boot writes at a fixed path: the
// files Render returns for any node (the node's certificate and key, whose
// names follow the node name, are in an owned directory instead), the
// status, node-ready and the commit journal. Nothing else may put a file
// there: the image build refuses a spec's file at any of them, at any of
// their StagingNames, or below OwnedDirs.
func OwnedFiles() []string {
	return append([]string{
		StatusPath, ReadyPath, KubeletEnvPath,
		NetdevPath, NetworkPath,
		CACertPath,
		KubeletKubeconfigPath, KubeletConfigPath,
		KubeProxyKubeconfigPath, KubeProxyConfigPath,
		CNIConfigPath,
		CommitJournalPath,
	}, ipAccessPaths()...)
}

func ipAccessPaths() []string {
	var out []string
	for _, u := range ipAccessUnits() {
		out = append(out, IPAccessPath(u))
	}
	return out
}

// OwnedDirs returns the directories whose every entry is first boot's: the
// certificates' directory.
func OwnedDirs() []string { return []string{CertDir} }

// StagingNames returns the names a file of first boot's goes by during a
// commit, next to it: its staged new content and its backup.
func StagingNames(p string) []string { return []string{stagedName(p), backupName(p)} }

// Owns reports whether first boot owns the file at p (a clean absolute
// path): one of OwnedFiles or their StagingNames, or in one of OwnedDirs.
func Owns(p string) bool {
	for _, d := range OwnedDirs() {
		if path.Dir(p) == d {
			return true
		}
	}
	for _, f := range OwnedFiles() {
		if p == f || p == stagedName(f) || p == backupName(f) {
			return true
		}
	}
	return false
}

// committed reports whether a commit may name the file at p: the files
// Render writes, for any node. A journal naming anything else is refused.
func committed(p string) bool {
	switch p {
	case StatusPath, ReadyPath, CommitJournalPath:
		return false
	}
	if path.Clean(p) != p {
		return false
	}
	for _, f := range OwnedFiles() {
		if p == f {
			return true
		}
	}
	base := path.Base(p)
	return path.Dir(p) == CertDir && strings.HasPrefix(base, "cert-") && strings.HasSuffix(base, ".pem")
}
