package build

import "github.com/nodebake/nodebake/builder/rootfs"

func firstbootUnits() ([]rootfs.Entry, error) { return nil, nil }
