module github.com/nodebake/nodebake

go 1.26.0

require golang.org/x/mod v0.43.0

require (
	github.com/google/go-cmp v0.7.0 // indirect
	github.com/google/go-containerregistry v0.22.1 // indirect
	gopkg.in/yaml.v3 v3.0.1 // indirect
	k8s.io/kube-proxy v0.35.4 // indirect
	k8s.io/kubelet v0.35.4 // indirect
)
