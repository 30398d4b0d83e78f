package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nodebake/nodebake/layers/gosource"
)

func main() {
	b := gosource.Builder{Log: os.Stderr}
	set := map[string]string{"runc": "v1.3.4", "cni-plugins": "v1.8.0", "containerd": "v2.2.0", "kubelet": "v1.35.4", "kube-proxy": "v1.35.4", "kubectl": "v1.35.4", "etcd": "v3.6.6", "kube-apiserver": "v1.35.4", "kube-controller-manager": "v1.35.4", "kube-scheduler": "v1.35.4"}
	for _, c := range os.Args[1:] {
		r, _ := gosource.Lookup(c)
		out := filepath.Join("/tmp/warmout", c)
		os.MkdirAll(out, 0o755)
		t := time.Now()
		if err := b.Build(context.Background(), r, set[c], "amd64", out); err != nil {
			fmt.Println("FAIL", c, err)
			continue
		}
		fmt.Println("OK", c, time.Since(t))
	}
}
