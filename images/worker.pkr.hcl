# The nodebake worker image, built by Packer:
#
#   packer init images/worker.pkr.hcl   # a released plugin (docs/packer-plugin.md)
#   make plugin-install                 # or: build this repository's and install it
#   packer build images/worker.pkr.hcl
#
# The worker is described once, in worker.yaml next to this file; the
# source below starts from it and overrides what the variables set. Every
# field of the spec can also be set here, in snake_case blocks:
#
#   kubernetes { service_cidr = "10.96.0.0/16" }
#   component {
#     name = "kubelet"
#     from = "go"
#   }
#   kubelet { config_json = jsonencode({ maxPods = 200 }) }
#   file {
#     path    = "/etc/motd"
#     content = "a nodebake worker\n"
#   }
#
# The image in each format asked for (-var 'formats=["raw","qcow2","gce"]'),
# its manifest, SBOM and sums land in output_directory; the post-processors
# add a Packer manifest, a sha256 checksum file and a summary line. Cloud
# import post-processors pick their file from the artifact by suffix: see
# docs/formats.md.

packer {
  required_plugins {
    nodebake = {
      source  = "github.com/nodebake/nodebake"
      version = ">= 0.1.0"
    }
  }
}

variable "kubernetes_version" {
  type        = string
  default     = ""
  description = "Kubernetes version (vMAJOR.MINOR.PATCH) of kubelet, kube-proxy and kubectl; empty keeps the spec's."
}

variable "mirror" {
  type        = string
  default     = ""
  description = "Base URL of a release mirror: https://HOST/PATH is fetched from MIRROR/HOST/PATH. Empty keeps the spec's (upstream by default)."
}

variable "output_directory" {
  type        = string
  default     = "out"
  description = "Directory the image (worker.raw) and its manifests are written to."
}

variable "formats" {
  type        = list(string)
  default     = []
  description = "Output formats (raw, raw.zst, qcow2, vhd, vmdk, gce, netboot); empty keeps the spec's (raw)."
}

variable "spec_file" {
  type        = string
  default     = ""
  description = "The worker image spec to start from; empty means worker.yaml next to this template."
}

variable "firstboot_binary" {
  type        = string
  default     = ""
  description = "The nodebake-firstboot program to bake; empty bakes the one embedded in the plugin."
}

locals {
  spec_file = var.spec_file != "" ? var.spec_file : "${path.root}/worker.yaml"
}

source "nodebake" "worker" {
  spec_file        = local.spec_file
  output_directory = var.output_directory
  firstboot_binary = var.firstboot_binary

  kubernetes {
    version = var.kubernetes_version
  }
  sources {
    mirror = var.mirror
  }
  output {
    formats = var.formats
  }
}

build {
  sources = ["source.nodebake.worker"]

  post-processor "manifest" {
    output     = "${var.output_directory}/packer-manifest.json"
    strip_path = true
  }
  post-processor "checksum" {
    checksum_types = ["sha256"]
    output         = "${var.output_directory}/{{.BuildName}}.{{.ChecksumType}}"
  }
  post-processor "shell-local" {
    inline = [
      "echo 'nodebake: ${build.ImagePath} (Kubernetes ${build.KubernetesVersion}, sha256 ${build.ImageSHA256})'",
      "echo 'nodebake formats: qcow2 ${build.QCOW2Path} gce ${build.GCEPath}'",
    ]
  }
}
