//go:build tools

// The tools the plugin's code generation uses, pinned by this module's
// go.mod: build them with go build from this module.
package main

import (
	_ "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc"
)
