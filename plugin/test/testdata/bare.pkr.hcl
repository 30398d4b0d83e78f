# A nodebake build without post-processors: the plugin's own cost.
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

source "nodebake" "worker" {
  spec_file        = var.spec_file
  output_directory = var.output_directory
}

build {
  sources = ["source.nodebake.worker"]
}
