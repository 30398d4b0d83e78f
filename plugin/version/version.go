// Package version holds the plugin's version.
package version

import "github.com/hashicorp/packer-plugin-sdk/version"

// Version is the plugin's version; release builds set it with
// -ldflags "-X github.com/nodebake/nodebake/plugin/version.Version=X.Y.Z".
var Version = "0.1.0"

// VersionPrerelease marks a development build ("dev"); release builds set
// it to "".
var VersionPrerelease = "dev"

// PluginVersion is the version the plugin reports to Packer.
var PluginVersion = version.NewPluginVersion(Version, VersionPrerelease, "")
