# The plugin's integration metadata; the components' README.md files next to
# it are generated from docs/ (make plugin-generate).
integration {
  name        = "nodebake"
  description = "Bakes immutable, bootable Kubernetes worker disk images without booting a machine."
  identifier  = "packer/nodebake/nodebake"
  docs {
    process_docs    = true
    readme_location = "./README.md"
  }
  component {
    type = "builder"
    name = "nodebake"
    slug = "nodebake"
  }
}
