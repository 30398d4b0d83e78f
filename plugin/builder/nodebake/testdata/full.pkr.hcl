# The body of a nodebake source setting every field: full.yaml in HCL.
name              = "worker-arm"
arch              = "arm64"
source_date_epoch = 1700000000

base {
  image  = "oci:base/trixie-arm64@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
  digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

kubernetes {
  version      = "v1.35.4"
  service_cidr = "10.96.0.0/16"
  cluster_cidr = "10.244.0.0/16"
  pod_network  = "bridge"
}

component {
  name    = "containerd"
  version = "v2.2.0"
  from    = "go"
}
component {
  name    = "runc"
  version = "v1.3.4"
  from    = "go"
}
component {
  name    = "cni-plugins"
  version = "v1.8.0"
  from    = "oci"
  image   = "registry.example:5000/cni/plugins:v1.8.0"
}
component {
  name    = "kubelet"
  version = "v1.34.2"
  url     = "https://downloads.example/k8s/{version}/{arch}/kubelet"
  sha256 = {
    amd64 = "4444444444444444444444444444444444444444444444444444444444444444"
    arm64 = "44444444444444444444444444444444444444444444444444444444444444aa"
  }
}
component {
  name   = "kubeProxy"
  sha256 = { arm64 = "5555555555555555555555555555555555555555555555555555555555555555" }
}
component {
  name   = "kubectl"
  sha512 = { arm64 = "66666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666666" }
}

sources {
  mirror  = "https://mirror.example/upstream/"
  retries = 5
}

kubelet {
  settings        = { "register-node" = "false", v = "2" }
  remove_settings = ["volume-plugin-dir"]
  config_json = jsonencode({
    clusterDNS     = ["10.96.0.10"]
    authentication = { x509 = { clientCAFile = "/var/lib/kubernetes/ca.pem" } }
    evictionHard   = { "memory.available" = "200Mi" }
    featureGates   = { KubeletTracing = true }
    maxPods        = 200
    cgroupDriver   = "cgroupfs"
  })
}

kube_proxy {
  settings    = { v = "4" }
  config_json = jsonencode({ mode = "nftables", ipvs = null })
}

containerd {
  systemd_cgroup = false
  sandbox_image  = "registry.k8s.io/pause:3.10.1"
}

image {
  ref   = "registry.k8s.io/coredns/coredns:v1.12.1"
  image = "tarball:images/coredns.tar"
}
image {
  ref    = "docker.io/library/busybox:1.37"
  image  = "docker.io/library/busybox:1.37"
  digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
}

file {
  path   = "/etc/motd"
  source = "files/motd"
}
file {
  path    = "/etc/issue"
  content = "nodebake worker\n"
  mode    = "644"
}
file {
  path    = "/etc/empty"
  content = ""
}
file {
  path      = "/etc/nodebake"
  directory = true
  mode      = "0750"
}
file {
  path    = "/usr/local/bin/helper"
  content = "#!/bin/sh\nexit 0\n"
  mode    = "4755"
  uid     = 1
  gid     = 2
}
file {
  path = "/etc/localtime"
  link = "/usr/share/zoneinfo/UTC"
}

output {
  formats                = ["raw"]
  esp_size               = "512MiB"
  var_size               = "2GiB"
  root_compression_level = 19
  kernel_args            = ["quiet", "systemd.log_level=debug"]
  verified_boot {
    enabled   = true
    version   = "1.35.4-1"
    slot_size = "1GiB"
    tries     = 5
    signing {
      key         = "files/db.key"
      certificate = "files/db.crt"
    }
    updates {
      source     = "http://updates.example/worker/"
      allow_http = true
      timer      = "daily"
    }
  }
}
