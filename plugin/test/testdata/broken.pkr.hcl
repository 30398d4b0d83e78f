# Three mistakes, each reported with its field by packer validate.
packer {
  required_plugins {
    nodebake = {
      source  = "github.com/nodebake/nodebake"
      version = ">= 0.1.0"
    }
  }
}

variable "spec_file" { type = string }

source "nodebake" "worker" {
  spec_file = var.spec_file

  kubernetes {
    service_cidr = "10.32.0.0/99"
  }
  kubelet {
    config_json = jsonencode({ maxPods = "many" })
  }
  output {
    esp_size = "a lot"
  }
}

build {
  sources = ["source.nodebake.worker"]
}
