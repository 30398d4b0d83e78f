# A nodebake build with a cache of its own (so every artifact is downloaded
# through Packer's UI) feeding the compress and shell-local post-processors.
packer {
  required_plugins {
    nodebake = {
      source  = "github.com/nodebake/nodebake"
      version = ">= 0.1.0"
    }
  }
}

variable "spec_file" { type = string }
variable "output_directory" { type = string }
variable "cache_dir" { type = string }

source "nodebake" "worker" {
  spec_file        = var.spec_file
  output_directory = var.output_directory
  cache_dir        = var.cache_dir
}

build {
  sources = ["source.nodebake.worker"]

  post-processor "compress" {
    output              = "${var.output_directory}/{{.BuildName}}.tar.gz"
    compression_level   = 1
    keep_input_artifact = true
  }
  post-processor "shell-local" {
    inline = [
      "echo '${build.ImageSHA256} ${build.ImagePath}' > '${var.output_directory}/generated.txt'",
      "echo 'kubelet ${build.KubeletVersion} containerd ${build.ContainerdVersion} kernel ${build.KernelRelease}' >> '${var.output_directory}/generated.txt'",
    ]
  }
}
