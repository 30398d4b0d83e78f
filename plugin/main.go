// Command packer-plugin-nodebake is the nodebake Packer plugin: its one
// builder, registered under the plugin's own name, is the HCL source type
// "nodebake".
package main

import (
	"fmt"
	"os"

	"github.com/hashicorp/packer-plugin-sdk/plugin"

	"github.com/nodebake/nodebake/plugin/builder/nodebake"
	"github.com/nodebake/nodebake/plugin/version"
)

func main() {
	pps := plugin.NewSet()
	pps.RegisterBuilder(plugin.DEFAULT_NAME, new(nodebake.Builder))
	pps.SetVersion(version.PluginVersion)
	if err := pps.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
