package e2e

import (
	"context"
	"os"
	"testing"

	"github.com/nodebake/nodebake/builder/build"
	"github.com/nodebake/nodebake/builder/spec"
	"github.com/nodebake/nodebake/layers/gosource"
	"github.com/nodebake/nodebake/test/harness"
)

func TestZZWarm(t *testing.T) {
	if os.Getenv("ZZWARM") == "" {
		t.Skip()
	}
	s := &spec.Spec{Arch: "amd64"}
	f := build.BuildFromSource(s, build.Options{Cache: harness.Cache(t), Go: gosource.Builder{Log: os.Stderr}})
	for _, c := range []struct{ n, v string }{{"etcd", "v3.6.6"}, {"kube-apiserver", "v1.35.4"}, {"kube-controller-manager", "v1.35.4"}, {"kube-scheduler", "v1.35.4"}} {
		d, err := f(context.Background(), c.n, c.v)
		t.Log(c.n, d, err)
	}
}
