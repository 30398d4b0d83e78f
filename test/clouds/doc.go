// Package clouds checks the cloud recipes of docs/clouds.md, so that the
// page and what it promises cannot drift apart.
//
// The page's fenced code blocks whose info string is "hcl validate-source"
// (the nodebake source, exactly one) and "hcl validate" (a build block
// with post-processors, one per recipe) are what the tests read:
//
//   - The fast tier (TestRecipes) reads the page's blocks and checks what
//     every recipe must say: UEFI on every import, artifice before
//     googlecompute-import, no build.* after the first post-processor of a
//     chain, formats the source builds, the plugin each post-processor
//     needs declared in required_plugins.
//   - The slow tier (TestPackerValidate, NODEBAKE_SLOW=1) runs a real
//     `packer validate` on each recipe together with the source: Packer,
//     the nodebake plugin built from this repository, and each HashiCorp
//     plugin at the version the page's "How these recipes are checked"
//     table names, built from the Go module proxy (cached in build/tools).
//     As a control it adds an unknown argument to every post-processor and
//     expects Packer to refuse it, which shows that the plugin's own
//     configuration check ran.
package clouds
