# Provisioners: shell-local runs on the Packer host; shell needs a machine
# and must be refused before any work.
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

  provisioner "shell-local" {
    inline = ["echo '${build.ImagePath}' > '${var.output_directory}.local-ran'"]
  }
  provisioner "shell" {
    inline = ["echo this needs a machine"]
  }
}
