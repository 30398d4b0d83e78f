package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"containerd", "runc", "cniPlugins", "kubelet", "kubeProxy", "kubectl"}
	for _, tc := range []struct{ name, want string }{
		{"kubelet", "kubelet"},
		{"KUBEPROXY", "kubeProxy"},   // case only
		{"kubelte", "kubelet"},       // distance 2
		{"kubeprxy", "kubeProxy"},    // distance 1 without case
		{"kubeletx", "kubelet"},      // distance 1
		{"kube", ""},                 // too far from all
		{"", ""},                     // nothing
		{"kubectx", "kubectl"},       // distance 1 from kubectl, 2 from kubelet: the closest
		{"conatinerd", "containerd"}, // a transposition is distance 2
		{"wireguard_address", ""},    // unrelated
		{"cniplugin", "cniPlugins"},  // 1 without case
		{"kubelet\x00", "kubelet"},   // bytes count like any other
		{"ku", ""},                   // short names are far from long ones
		{"kubecdl", "kubectl"},       // 1
		{"kubeletkubelet", ""},       // 7
	} {
		if got := Closest(tc.name, known); got != tc.want {
			t.Errorf("Closest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	// A tie goes to the first in known order.
	if got := Closest("ab", []string{"xb", "ax"}); got != "xb" {
		t.Errorf("tie: %q, want the first known, xb", got)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"a", "", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}, {"same", "same", 0},
	} {
		if got := Distance(tc.a, tc.b); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := Distance(tc.b, tc.a); got != tc.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", tc.b, tc.a, got, tc.want)
		}
	}
}
