package spec

// PodNetworks returns the pod network modes.
func PodNetworks() []PodNetwork { return []PodNetwork{PodNetworkNone, PodNetworkBridge} }

// ComponentSources returns where a component's files may come from.
func ComponentSources() []ComponentSource { return []ComponentSource{FromRelease, FromGo, FromOCI} }
